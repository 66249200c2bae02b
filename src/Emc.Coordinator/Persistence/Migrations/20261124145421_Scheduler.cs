using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Emc.Coordinator.Persistence.Migrations
{
    /// <inheritdoc />
    public partial class Scheduler : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "account_weights",
                columns: table => new
                {
                    account = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    weight = table.Column<double>(type: "REAL", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_account_weights", x => x.account);
                });

            migrationBuilder.CreateTable(
                name: "jobs",
                columns: table => new
                {
                    id = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    number = table.Column<long>(type: "INTEGER", nullable: false),
                    name = table.Column<string>(type: "TEXT", maxLength: 200, nullable: false),
                    account = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    priority = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    demand = table.Column<string>(type: "TEXT", nullable: false),
                    gang = table.Column<bool>(type: "INTEGER", nullable: false),
                    gang_retries = table.Column<int>(type: "INTEGER", nullable: false),
                    max_retries = table.Column<int>(type: "INTEGER", nullable: false),
                    lease_duration_ms = table.Column<long>(type: "INTEGER", nullable: false),
                    gang_timeout_ms = table.Column<long>(type: "INTEGER", nullable: false),
                    idempotency_key = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    state = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false),
                    updated_at = table.Column<long>(type: "INTEGER", nullable: false),
                    finished_at = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_jobs", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "task_results",
                columns: table => new
                {
                    task_id = table.Column<string>(type: "TEXT", maxLength: 48, nullable: false),
                    attempt = table.Column<int>(type: "INTEGER", nullable: false),
                    node_id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    succeeded = table.Column<bool>(type: "INTEGER", nullable: false),
                    output = table.Column<string>(type: "TEXT", nullable: true),
                    output_hash = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    error = table.Column<string>(type: "TEXT", nullable: true),
                    counted = table.Column<bool>(type: "INTEGER", nullable: false),
                    at = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_task_results", x => new { x.task_id, x.attempt });
                });

            migrationBuilder.CreateTable(
                name: "tasks",
                columns: table => new
                {
                    id = table.Column<string>(type: "TEXT", maxLength: 48, nullable: false),
                    job_id = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    idx = table.Column<int>(type: "INTEGER", nullable: false),
                    kind = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    input = table.Column<string>(type: "TEXT", nullable: false),
                    state = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    attempt = table.Column<int>(type: "INTEGER", nullable: false),
                    retries = table.Column<int>(type: "INTEGER", nullable: false),
                    lease_nodes = table.Column<string>(type: "TEXT", nullable: false),
                    device = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    lease_expires_at = table.Column<long>(type: "INTEGER", nullable: true),
                    accepted = table.Column<bool>(type: "INTEGER", nullable: false),
                    reason = table.Column<string>(type: "TEXT", nullable: true),
                    winning_attempt = table.Column<int>(type: "INTEGER", nullable: true),
                    output = table.Column<string>(type: "TEXT", nullable: true),
                    output_hash = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    excluded_nodes = table.Column<string>(type: "TEXT", nullable: false),
                    sequence = table.Column<long>(type: "INTEGER", nullable: false),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false),
                    updated_at = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_tasks", x => x.id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_jobs_idempotency_key",
                table: "jobs",
                column: "idempotency_key",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_jobs_number",
                table: "jobs",
                column: "number",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_jobs_state",
                table: "jobs",
                column: "state");

            migrationBuilder.CreateIndex(
                name: "IX_tasks_job_id_idx",
                table: "tasks",
                columns: new[] { "job_id", "idx" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_tasks_state",
                table: "tasks",
                column: "state");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "account_weights");

            migrationBuilder.DropTable(
                name: "jobs");

            migrationBuilder.DropTable(
                name: "task_results");

            migrationBuilder.DropTable(
                name: "tasks");
        }
    }
}

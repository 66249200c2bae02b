using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Emc.Coordinator.Persistence.Migrations
{
    /// <inheritdoc />
    public partial class Training : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<bool>(
                name: "elastic",
                table: "jobs",
                type: "INTEGER",
                nullable: false,
                defaultValue: false);

            migrationBuilder.CreateTable(
                name: "datasets",
                columns: table => new
                {
                    Name = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    ManifestHash = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    ManifestJson = table.Column<string>(type: "TEXT", nullable: false),
                    Format = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    Bytes = table.Column<long>(type: "INTEGER", nullable: false),
                    CreatedAtUnixMs = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_datasets", x => x.Name);
                });

            migrationBuilder.CreateTable(
                name: "models",
                columns: table => new
                {
                    Name = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    Version = table.Column<int>(type: "INTEGER", nullable: false),
                    Format = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    DescriptorJson = table.Column<string>(type: "TEXT", nullable: false),
                    WeightsHash = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    Bytes = table.Column<long>(type: "INTEGER", nullable: false),
                    SourceJob = table.Column<string>(type: "TEXT", maxLength: 32, nullable: true),
                    CreatedAtUnixMs = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_models", x => new { x.Name, x.Version });
                });

            migrationBuilder.CreateTable(
                name: "training_jobs",
                columns: table => new
                {
                    Id = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    Number = table.Column<long>(type: "INTEGER", nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 200, nullable: false),
                    Account = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    SpecJson = table.Column<string>(type: "TEXT", nullable: false),
                    State = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    Reason = table.Column<string>(type: "TEXT", nullable: true),
                    Round = table.Column<long>(type: "INTEGER", nullable: false),
                    WeightsHash = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    MomentumHash = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    VectorLength = table.Column<long>(type: "INTEGER", nullable: false),
                    StreamPosition = table.Column<long>(type: "INTEGER", nullable: false),
                    StepCount = table.Column<long>(type: "INTEGER", nullable: false),
                    ProgressJson = table.Column<string>(type: "TEXT", nullable: false),
                    RoundJobId = table.Column<string>(type: "TEXT", maxLength: 32, nullable: true),
                    IdempotencyKey = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    ModelName = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    ModelVersion = table.Column<int>(type: "INTEGER", nullable: true),
                    CreatedAtUnixMs = table.Column<long>(type: "INTEGER", nullable: false),
                    UpdatedAtUnixMs = table.Column<long>(type: "INTEGER", nullable: false),
                    FinishedAtUnixMs = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_training_jobs", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "training_rounds",
                columns: table => new
                {
                    JobId = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    Round = table.Column<long>(type: "INTEGER", nullable: false),
                    SummaryJson = table.Column<string>(type: "TEXT", nullable: false),
                    CreatedAtUnixMs = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_training_rounds", x => new { x.JobId, x.Round });
                });

            migrationBuilder.CreateIndex(
                name: "IX_training_jobs_IdempotencyKey",
                table: "training_jobs",
                column: "IdempotencyKey",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_training_jobs_Number",
                table: "training_jobs",
                column: "Number",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_training_jobs_State",
                table: "training_jobs",
                column: "State");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "datasets");

            migrationBuilder.DropTable(
                name: "models");

            migrationBuilder.DropTable(
                name: "training_jobs");

            migrationBuilder.DropTable(
                name: "training_rounds");

            migrationBuilder.DropColumn(
                name: "elastic",
                table: "jobs");
        }
    }
}

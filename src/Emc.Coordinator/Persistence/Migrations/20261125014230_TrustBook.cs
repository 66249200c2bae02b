using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Emc.Coordinator.Persistence.Migrations
{
    /// <inheritdoc />
    public partial class TrustBook : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "trust_records",
                columns: table => new
                {
                    Node = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    Scope = table.Column<string>(type: "TEXT", maxLength: 200, nullable: false),
                    Consecutive = table.Column<long>(type: "INTEGER", nullable: false),
                    Verified = table.Column<long>(type: "INTEGER", nullable: false),
                    Faults = table.Column<long>(type: "INTEGER", nullable: false),
                    Disputes = table.Column<long>(type: "INTEGER", nullable: false),
                    UpdatedAtUnixMs = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_trust_records", x => new { x.Node, x.Scope });
                });

            migrationBuilder.CreateTable(
                name: "trust_reputations",
                columns: table => new
                {
                    Node = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    Reputation = table.Column<double>(type: "REAL", nullable: false),
                    UpdatedAtUnixMs = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_trust_reputations", x => x.Node);
                });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "trust_records");

            migrationBuilder.DropTable(
                name: "trust_reputations");
        }
    }
}

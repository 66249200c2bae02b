using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Emc.Coordinator.Persistence.Migrations
{
    /// <inheritdoc />
    public partial class Inference : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "FileHash",
                table: "models",
                type: "TEXT",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "OnnxExportHash",
                table: "models",
                type: "TEXT",
                maxLength: 64,
                nullable: true);

            migrationBuilder.CreateTable(
                name: "deployments",
                columns: table => new
                {
                    Id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    Model = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    Version = table.Column<int>(type: "INTEGER", nullable: false),
                    SpecJson = table.Column<string>(type: "TEXT", nullable: false),
                    CreatedAtUnixMs = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_deployments", x => x.Id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_deployments_Model_Version",
                table: "deployments",
                columns: new[] { "Model", "Version" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "deployments");

            migrationBuilder.DropColumn(
                name: "FileHash",
                table: "models");

            migrationBuilder.DropColumn(
                name: "OnnxExportHash",
                table: "models");
        }
    }
}

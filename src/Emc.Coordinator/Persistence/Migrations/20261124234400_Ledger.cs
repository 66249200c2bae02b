using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Emc.Coordinator.Persistence.Migrations
{
    /// <inheritdoc />
    public partial class Ledger : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "ledger_balances",
                columns: table => new
                {
                    Account = table.Column<string>(type: "TEXT", maxLength: 220, nullable: false),
                    Balance = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_ledger_balances", x => x.Account);
                });

            migrationBuilder.CreateTable(
                name: "ledger_entries",
                columns: table => new
                {
                    Sequence = table.Column<long>(type: "INTEGER", nullable: false),
                    Account = table.Column<string>(type: "TEXT", maxLength: 220, nullable: false),
                    Amount = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_ledger_entries", x => new { x.Sequence, x.Account });
                });

            migrationBuilder.CreateTable(
                name: "ledger_epochs",
                columns: table => new
                {
                    Number = table.Column<long>(type: "INTEGER", nullable: false),
                    ClosedAtUnixMs = table.Column<long>(type: "INTEGER", nullable: false),
                    LastSequence = table.Column<long>(type: "INTEGER", nullable: false),
                    SettlementSequence = table.Column<long>(type: "INTEGER", nullable: true),
                    Root = table.Column<string>(type: "TEXT", maxLength: 66, nullable: false),
                    LeavesJson = table.Column<string>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_ledger_epochs", x => x.Number);
                });

            migrationBuilder.CreateTable(
                name: "ledger_transactions",
                columns: table => new
                {
                    Sequence = table.Column<long>(type: "INTEGER", nullable: false),
                    IdempotencyKey = table.Column<string>(type: "TEXT", maxLength: 200, nullable: false),
                    Kind = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    TimeUnixMs = table.Column<long>(type: "INTEGER", nullable: false),
                    RequestDigest = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    JobId = table.Column<string>(type: "TEXT", maxLength: 200, nullable: true),
                    Round = table.Column<long>(type: "INTEGER", nullable: true),
                    RequestId = table.Column<string>(type: "TEXT", maxLength: 200, nullable: true),
                    Memo = table.Column<string>(type: "TEXT", maxLength: 1000, nullable: true),
                    SubjectEscrow = table.Column<string>(type: "TEXT", maxLength: 220, nullable: true),
                    SubjectNode = table.Column<string>(type: "TEXT", maxLength: 42, nullable: true),
                    SubjectPayment = table.Column<string>(type: "TEXT", maxLength: 200, nullable: true),
                    SubjectDueAtUnixMs = table.Column<long>(type: "INTEGER", nullable: true),
                    SubjectEpoch = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_ledger_transactions", x => x.Sequence);
                });

            migrationBuilder.CreateIndex(
                name: "IX_ledger_entries_Account_Sequence",
                table: "ledger_entries",
                columns: new[] { "Account", "Sequence" });

            migrationBuilder.CreateIndex(
                name: "IX_ledger_transactions_IdempotencyKey",
                table: "ledger_transactions",
                column: "IdempotencyKey",
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "ledger_balances");

            migrationBuilder.DropTable(
                name: "ledger_entries");

            migrationBuilder.DropTable(
                name: "ledger_epochs");

            migrationBuilder.DropTable(
                name: "ledger_transactions");
        }
    }
}

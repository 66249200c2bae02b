using Emc.Coordinator.Accounts;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace Emc.Coordinator.Persistence;

/// <summary>The coordinator's durable state: SQLite by default, PostgreSQL in cluster mode.</summary>
public sealed class EmcDbContext(DbContextOptions<EmcDbContext> options) : DbContext(options)
{
    public DbSet<NodeRecord> Nodes => Set<NodeRecord>();

    public DbSet<SettingRecord> Settings => Set<SettingRecord>();

    public DbSet<JobRow> Jobs => Set<JobRow>();

    public DbSet<TaskRow> Tasks => Set<TaskRow>();

    public DbSet<TaskResultRow> TaskResults => Set<TaskResultRow>();

    public DbSet<AccountWeightRow> AccountWeights => Set<AccountWeightRow>();

    public DbSet<DatasetRow> Datasets => Set<DatasetRow>();

    public DbSet<TrainingJobRow> TrainingJobs => Set<TrainingJobRow>();

    public DbSet<TrainingRoundRow> TrainingRounds => Set<TrainingRoundRow>();

    public DbSet<ModelRow> Models => Set<ModelRow>();

    public DbSet<DeploymentRow> Deployments => Set<DeploymentRow>();

    public DbSet<Ledger.LedgerTransactionRow> LedgerTransactions => Set<Ledger.LedgerTransactionRow>();

    public DbSet<Ledger.LedgerEntryRow> LedgerEntries => Set<Ledger.LedgerEntryRow>();

    public DbSet<Ledger.LedgerBalanceRow> LedgerBalances => Set<Ledger.LedgerBalanceRow>();

    public DbSet<Ledger.LedgerEpochRow> LedgerEpochs => Set<Ledger.LedgerEpochRow>();

    public DbSet<AccountRow> Accounts => Set<AccountRow>();

    public DbSet<ApiKeyRow> ApiKeys => Set<ApiKeyRow>();

    public DbSet<TrustRecordRow> TrustRecords => Set<TrustRecordRow>();

    public DbSet<TrustReputationRow> TrustReputations => Set<TrustReputationRow>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<NodeRecord>(node =>
        {
            node.ToTable("nodes");
            node.HasKey(n => n.Address);
            node.Property(n => n.Address).HasMaxLength(42);
            node.Property(n => n.Name).HasMaxLength(64);
            node.Property(n => n.Status).HasMaxLength(16);
            node.Property(n => n.AgentVersion).HasMaxLength(64);
            node.Property(n => n.RemoteEndpoint).HasMaxLength(128);
            node.Property(n => n.SessionId).HasMaxLength(64);
            node.HasIndex(n => n.Status);
        });

        modelBuilder.Entity<DatasetRow>(dataset =>
        {
            dataset.ToTable("datasets");
            dataset.HasKey(d => d.Name);
            dataset.Property(d => d.Name).HasMaxLength(64);
            dataset.Property(d => d.ManifestHash).HasMaxLength(64);
            dataset.Property(d => d.Format).HasMaxLength(16);
            dataset.Property(d => d.Owner).HasMaxLength(64).HasDefaultValue(AccountIds.Operator);
        });

        modelBuilder.Entity<TrainingJobRow>(job =>
        {
            job.ToTable("training_jobs");
            job.HasKey(j => j.Id);
            job.Property(j => j.Id).HasMaxLength(32);
            job.Property(j => j.Name).HasMaxLength(200);
            job.Property(j => j.Account).HasMaxLength(64);
            job.Property(j => j.State).HasMaxLength(16);
            job.Property(j => j.WeightsHash).HasMaxLength(64);
            job.Property(j => j.MomentumHash).HasMaxLength(64);
            job.Property(j => j.RoundJobId).HasMaxLength(32);
            job.Property(j => j.IdempotencyKey).HasMaxLength(128);
            job.Property(j => j.ModelName).HasMaxLength(64);
            job.HasIndex(j => j.Number).IsUnique();
            job.HasIndex(j => j.State);
            job.HasIndex(j => j.IdempotencyKey).IsUnique();
        });

        modelBuilder.Entity<TrainingRoundRow>(round =>
        {
            round.ToTable("training_rounds");
            round.HasKey(r => new { r.JobId, r.Round });
            round.Property(r => r.JobId).HasMaxLength(32);
        });

        modelBuilder.Entity<ModelRow>(model =>
        {
            model.ToTable("models");
            model.HasKey(m => new { m.Name, m.Version });
            model.Property(m => m.Name).HasMaxLength(64);
            model.Property(m => m.Format).HasMaxLength(16);
            model.Property(m => m.WeightsHash).HasMaxLength(64);
            model.Property(m => m.SourceJob).HasMaxLength(32);
            model.Property(m => m.FileHash).HasMaxLength(64);
            model.Property(m => m.OnnxExportHash).HasMaxLength(64);
            model.Property(m => m.Owner).HasMaxLength(64).HasDefaultValue(AccountIds.Operator);
        });

        modelBuilder.Entity<DeploymentRow>(deployment =>
        {
            deployment.ToTable("deployments");
            deployment.HasKey(d => d.Id);
            deployment.Property(d => d.Id).HasMaxLength(64);
            deployment.Property(d => d.Model).HasMaxLength(64);
            deployment.Property(d => d.Owner).HasMaxLength(64).HasDefaultValue(AccountIds.Operator);

            // "Is this model version deployed?" is asked before a model is removed.
            deployment.HasIndex(d => new { d.Model, d.Version });
        });

        modelBuilder.Entity<AccountRow>(account =>
        {
            account.ToTable("accounts");
            account.HasKey(a => a.Id);
            account.Property(a => a.Id).HasMaxLength(64);
            account.Property(a => a.Name).HasMaxLength(64);
            account.Property(a => a.Role).HasMaxLength(16);
        });

        modelBuilder.Entity<ApiKeyRow>(key =>
        {
            key.ToTable("api_keys");
            key.HasKey(k => k.Id);
            key.Property(k => k.Id).HasMaxLength(16);
            key.Property(k => k.AccountId).HasMaxLength(64);
            key.Property(k => k.Name).HasMaxLength(64);
            key.Property(k => k.Hash).HasMaxLength(64);
            key.HasOne<AccountRow>().WithMany().HasForeignKey(k => k.AccountId).OnDelete(DeleteBehavior.Restrict);
            key.HasIndex(k => k.AccountId);
        });

        // The trust book (Verification/TrustStore): records per (node, scope) and a reputation per node.
        modelBuilder.Entity<TrustRecordRow>(record =>
        {
            record.ToTable("trust_records");
            record.HasKey(r => new { r.Node, r.Scope });
            record.Property(r => r.Node).HasMaxLength(64);
            record.Property(r => r.Scope).HasMaxLength(200);
        });

        modelBuilder.Entity<TrustReputationRow>(reputation =>
        {
            reputation.ToTable("trust_reputations");
            reputation.HasKey(r => r.Node);
            reputation.Property(r => r.Node).HasMaxLength(64);
        });

        modelBuilder.Entity<SettingRecord>(setting =>
        {
            setting.ToTable("settings");
            setting.HasKey(s => s.Key);
            setting.Property(s => s.Key).HasMaxLength(64);
        });

        // The scheduler's tables are written with raw SQL by SchedulerStore, so their column names are
        // fixed here rather than left to EF's conventions.
        modelBuilder.Entity<JobRow>(job =>
        {
            job.ToTable("jobs");
            job.HasKey(j => j.Id);
            job.Property(j => j.Id).HasColumnName("id").HasMaxLength(32);
            job.Property(j => j.Number).HasColumnName("number");
            job.Property(j => j.Name).HasColumnName("name").HasMaxLength(200);
            job.Property(j => j.Account).HasColumnName("account").HasMaxLength(64);
            job.Property(j => j.Priority).HasColumnName("priority").HasMaxLength(16);
            job.Property(j => j.DemandJson).HasColumnName("demand");
            job.Property(j => j.Gang).HasColumnName("gang");
            job.Property(j => j.Elastic).HasColumnName("elastic");
            job.Property(j => j.GangRetries).HasColumnName("gang_retries");
            job.Property(j => j.MaxRetries).HasColumnName("max_retries");
            job.Property(j => j.LeaseDurationMs).HasColumnName("lease_duration_ms");
            job.Property(j => j.GangTimeoutMs).HasColumnName("gang_timeout_ms");
            job.Property(j => j.IdempotencyKey).HasColumnName("idempotency_key").HasMaxLength(128);
            job.Property(j => j.State).HasColumnName("state").HasMaxLength(16);
            job.Property(j => j.CreatedAtUnixMs).HasColumnName("created_at");
            job.Property(j => j.UpdatedAtUnixMs).HasColumnName("updated_at");
            job.Property(j => j.FinishedAtUnixMs).HasColumnName("finished_at");
            job.HasIndex(j => j.Number).IsUnique();
            job.HasIndex(j => j.IdempotencyKey).IsUnique();
            job.HasIndex(j => j.State);
        });

        modelBuilder.Entity<TaskRow>(task =>
        {
            task.ToTable("tasks");
            task.HasKey(t => t.Id);
            task.Property(t => t.Id).HasColumnName("id").HasMaxLength(48);
            task.Property(t => t.JobId).HasColumnName("job_id").HasMaxLength(32);
            task.Property(t => t.Index).HasColumnName("idx");
            task.Property(t => t.Kind).HasColumnName("kind").HasMaxLength(64);
            task.Property(t => t.Input).HasColumnName("input");
            task.Property(t => t.State).HasColumnName("state").HasMaxLength(16);
            task.Property(t => t.Attempt).HasColumnName("attempt");
            task.Property(t => t.Retries).HasColumnName("retries");
            task.Property(t => t.LeaseNodes).HasColumnName("lease_nodes");
            task.Property(t => t.Device).HasColumnName("device").HasMaxLength(64);
            task.Property(t => t.LeaseExpiresAtUnixMs).HasColumnName("lease_expires_at");
            task.Property(t => t.Accepted).HasColumnName("accepted");
            task.Property(t => t.Reason).HasColumnName("reason");
            task.Property(t => t.WinningAttempt).HasColumnName("winning_attempt");
            task.Property(t => t.Output).HasColumnName("output");
            task.Property(t => t.OutputHash).HasColumnName("output_hash").HasMaxLength(64);
            task.Property(t => t.ExcludedNodes).HasColumnName("excluded_nodes");
            task.Property(t => t.Sequence).HasColumnName("sequence");
            task.Property(t => t.CreatedAtUnixMs).HasColumnName("created_at");
            task.Property(t => t.UpdatedAtUnixMs).HasColumnName("updated_at");

            // (job_id, idx) serves both "the tasks of a job" and listing them in index order.
            task.HasIndex(t => new { t.JobId, t.Index }).IsUnique();
            task.HasIndex(t => t.State);
        });

        modelBuilder.Entity<TaskResultRow>(result =>
        {
            result.ToTable("task_results");
            result.HasKey(r => new { r.TaskId, r.Attempt });
            result.Property(r => r.TaskId).HasColumnName("task_id").HasMaxLength(48);
            result.Property(r => r.Attempt).HasColumnName("attempt");
            result.Property(r => r.NodeId).HasColumnName("node_id").HasMaxLength(64);
            result.Property(r => r.Succeeded).HasColumnName("succeeded");
            result.Property(r => r.Output).HasColumnName("output");
            result.Property(r => r.OutputHash).HasColumnName("output_hash").HasMaxLength(64);
            result.Property(r => r.Error).HasColumnName("error");
            result.Property(r => r.Counted).HasColumnName("counted");
            result.Property(r => r.AtUnixMs).HasColumnName("at");
        });

        modelBuilder.Entity<AccountWeightRow>(weight =>
        {
            weight.ToTable("account_weights");
            weight.HasKey(w => w.Account);
            weight.Property(w => w.Account).HasColumnName("account").HasMaxLength(64);
            weight.Property(w => w.Weight).HasColumnName("weight");
        });

        ConfigureLedger(modelBuilder);
    }

    /// <summary>The ledger's journal (EfLedgerStore): transactions, their entries, balances and settlement epochs.</summary>
    private static void ConfigureLedger(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<Ledger.LedgerTransactionRow>(transaction =>
        {
            transaction.ToTable("ledger_transactions");
            transaction.HasKey(t => t.Sequence);
            transaction.Property(t => t.Sequence).ValueGeneratedNever();
            transaction.Property(t => t.IdempotencyKey).HasMaxLength(200);
            transaction.Property(t => t.Kind).HasMaxLength(32);
            transaction.Property(t => t.RequestDigest).HasMaxLength(64);
            transaction.Property(t => t.JobId).HasMaxLength(200);
            transaction.Property(t => t.RequestId).HasMaxLength(200);
            transaction.Property(t => t.Memo).HasMaxLength(1000);
            transaction.Property(t => t.SubjectEscrow).HasMaxLength(220);
            transaction.Property(t => t.SubjectNode).HasMaxLength(42);
            transaction.Property(t => t.SubjectPayment).HasMaxLength(200);
            transaction.HasIndex(t => t.IdempotencyKey).IsUnique();
        });

        modelBuilder.Entity<Ledger.LedgerEntryRow>(entry =>
        {
            entry.ToTable("ledger_entries");
            entry.HasKey(e => new { e.Sequence, e.Account });
            entry.Property(e => e.Account).HasMaxLength(220);
            entry.HasIndex(e => new { e.Account, e.Sequence });
        });

        modelBuilder.Entity<Ledger.LedgerBalanceRow>(balance =>
        {
            balance.ToTable("ledger_balances");
            balance.HasKey(b => b.Account);
            balance.Property(b => b.Account).HasMaxLength(220);
        });

        modelBuilder.Entity<Ledger.LedgerEpochRow>(epoch =>
        {
            epoch.ToTable("ledger_epochs");
            epoch.HasKey(e => e.Number);
            epoch.Property(e => e.Number).ValueGeneratedNever();
            epoch.Property(e => e.Root).HasMaxLength(66);
        });
    }
}

/// <summary>Lets `dotnet ef migrations add` build the model without starting the coordinator.</summary>
internal sealed class DesignTimeDbContextFactory : IDesignTimeDbContextFactory<EmcDbContext>
{
    public EmcDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<EmcDbContext>().UseSqlite("Data Source=design.db").Options);
}

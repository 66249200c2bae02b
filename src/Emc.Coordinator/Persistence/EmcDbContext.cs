using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace Emc.Coordinator.Persistence;

/// <summary>The coordinator's durable state: SQLite by default, PostgreSQL in cluster mode.</summary>
public sealed class EmcDbContext(DbContextOptions<EmcDbContext> options) : DbContext(options)
{
    public DbSet<NodeRecord> Nodes => Set<NodeRecord>();

    public DbSet<SettingRecord> Settings => Set<SettingRecord>();

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

        modelBuilder.Entity<SettingRecord>(setting =>
        {
            setting.ToTable("settings");
            setting.HasKey(s => s.Key);
            setting.Property(s => s.Key).HasMaxLength(64);
        });
    }
}

/// <summary>Lets `dotnet ef migrations add` build the model without starting the coordinator.</summary>
internal sealed class DesignTimeDbContextFactory : IDesignTimeDbContextFactory<EmcDbContext>
{
    public EmcDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<EmcDbContext>().UseSqlite("Data Source=design.db").Options);
}

using Emc.Coordinator.Persistence;
using Microsoft.EntityFrameworkCore;

namespace Emc.Coordinator.Training;

/// <summary>Datasets, training jobs with their checkpoints and rounds, and registered models, in the database.</summary>
public sealed class TrainingStore(IDbContextFactory<EmcDbContext> factory)
{
    public async Task<DatasetRow?> GetDatasetAsync(string name, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.Datasets.AsNoTracking().FirstOrDefaultAsync(d => d.Name == name, cancellationToken);
    }

    public async Task<IReadOnlyList<DatasetRow>> ListDatasetsAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.Datasets.AsNoTracking().OrderBy(d => d.Name).ToListAsync(cancellationToken);
    }

    /// <summary>Adds the dataset; false when the name is taken.</summary>
    public async Task<bool> AddDatasetAsync(DatasetRow row, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        if (await db.Datasets.AnyAsync(d => d.Name == row.Name, cancellationToken))
        {
            return false;
        }

        db.Datasets.Add(row);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
            return true;
        }
        catch (DbUpdateException)
        {
            return false;
        }
    }

    public async Task<bool> RemoveDatasetAsync(string name, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.Datasets.Where(d => d.Name == name).ExecuteDeleteAsync(cancellationToken) > 0;
    }

    /// <summary>Training jobs that are not finished and read the dataset.</summary>
    public async Task<IReadOnlyList<string>> ActiveJobsUsingAsync(string dataset, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var active = new[] { "waiting", "running" };
        var rows = await db.TrainingJobs.AsNoTracking().Where(j => active.Contains(j.State)).ToListAsync(cancellationToken);
        return rows.Where(j => TrainingJson.ReadSpec(j.SpecJson).Dataset == dataset).Select(j => j.Id).ToList();
    }

    public async Task<long> NextJobNumberAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var last = await db.TrainingJobs.MaxAsync(j => (long?)j.Number, cancellationToken);
        return (last ?? 0) + 1;
    }

    public async Task<TrainingJobRow?> FindByIdempotencyKeyAsync(string key, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.TrainingJobs.AsNoTracking().FirstOrDefaultAsync(j => j.IdempotencyKey == key, cancellationToken);
    }

    public async Task InsertJobAsync(TrainingJobRow row, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        db.TrainingJobs.Add(row);
        await db.SaveChangesAsync(cancellationToken);
    }

    public async Task<TrainingJobRow?> GetJobAsync(string id, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.TrainingJobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, cancellationToken);
    }

    /// <summary>The newest jobs, only in <paramref name="state"/> and of <paramref name="account"/> when given.</summary>
    public async Task<IReadOnlyList<TrainingJobRow>> ListJobsAsync(string? state, string? account, int limit, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var query = db.TrainingJobs.AsNoTracking();
        if (state is not null)
        {
            query = query.Where(j => j.State == state);
        }

        if (account is not null)
        {
            query = query.Where(j => j.Account == account);
        }

        return await query.OrderByDescending(j => j.Number).Take(limit).ToListAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<TrainingJobRow>> ListUnfinishedJobsAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var active = new[] { "waiting", "running" };
        return await db.TrainingJobs.AsNoTracking().Where(j => active.Contains(j.State)).OrderBy(j => j.Number).ToListAsync(cancellationToken);
    }

    /// <summary>Writes the job's state, and the round it just closed if any, in one transaction: the checkpoint.</summary>
    public async Task SaveJobAsync(TrainingJobRow row, TrainingRoundRow? round, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        db.TrainingJobs.Update(row);
        if (round is not null)
        {
            await db.TrainingRounds.Where(r => r.JobId == round.JobId && r.Round == round.Round).ExecuteDeleteAsync(cancellationToken);
            db.TrainingRounds.Add(round);
        }

        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<TrainingRoundRow>> ListRoundsAsync(string jobId, long after, int limit, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.TrainingRounds.AsNoTracking()
            .Where(r => r.JobId == jobId && r.Round > after)
            .OrderBy(r => r.Round)
            .Take(limit)
            .ToListAsync(cancellationToken);
    }

    public async Task<TrainingRoundRow?> LastRoundAsync(string jobId, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.TrainingRounds.AsNoTracking()
            .Where(r => r.JobId == jobId)
            .OrderByDescending(r => r.Round)
            .FirstOrDefaultAsync(cancellationToken);
    }

    /// <summary>The account a model name belongs to (the owner of its versions); null for a name not in use.</summary>
    public async Task<string?> ModelOwnerAsync(string name, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.Models.AsNoTracking().Where(m => m.Name == name).Select(m => m.Owner).FirstOrDefaultAsync(cancellationToken);
    }

    /// <summary>
    /// Registers a new version of the model named <paramref name="row"/>.Name and completes the job, in one
    /// transaction; returns null, and changes nothing, when the name belongs to an account other than
    /// <paramref name="row"/>.Owner.
    /// </summary>
    public async Task<int?> RegisterModelAsync(ModelRow row, TrainingJobRow? job, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        if (await db.Models.Where(m => m.Name == row.Name).Select(m => m.Owner).FirstOrDefaultAsync(cancellationToken) is { } holder && holder != row.Owner)
        {
            return null;
        }

        var last = await db.Models.Where(m => m.Name == row.Name).MaxAsync(m => (int?)m.Version, cancellationToken);
        row.Version = (last ?? 0) + 1;
        db.Models.Add(row);
        if (job is not null)
        {
            job.ModelName = row.Name;
            job.ModelVersion = row.Version;
            db.TrainingJobs.Update(job);
        }

        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return row.Version;
    }

    /// <summary>
    /// Adds a pushed model as version <paramref name="version"/>, or as the next version when that is
    /// null; returns the version, or null when the version is taken. The row takes the owner of the
    /// name's other versions, if it has any.
    /// </summary>
    public async Task<int?> AddModelVersionAsync(ModelRow row, int? version, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        if (await db.Models.Where(m => m.Name == row.Name).Select(m => m.Owner).FirstOrDefaultAsync(cancellationToken) is { } holder)
        {
            row.Owner = holder;
        }
        if (version is { } wanted)
        {
            if (await db.Models.AnyAsync(m => m.Name == row.Name && m.Version == wanted, cancellationToken))
            {
                return null;
            }

            row.Version = wanted;
        }
        else
        {
            var last = await db.Models.Where(m => m.Name == row.Name).MaxAsync(m => (int?)m.Version, cancellationToken);
            row.Version = (last ?? 0) + 1;
        }

        db.Models.Add(row);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            return row.Version;
        }
        catch (DbUpdateException)
        {
            // Another push took the version between the check and the insert.
            return null;
        }
    }

    /// <summary>Removes one version of a model, or every version when <paramref name="version"/> is null; returns the rows removed.</summary>
    public async Task<IReadOnlyList<ModelRow>> RemoveModelsAsync(string name, int? version, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var rows = await db.Models.Where(m => m.Name == name && (version == null || m.Version == version)).ToListAsync(cancellationToken);
        db.Models.RemoveRange(rows);
        await db.SaveChangesAsync(cancellationToken);
        return rows;
    }

    /// <summary>Records the blob that holds a model version's ONNX export.</summary>
    public async Task SetOnnxExportAsync(string name, int version, string hash, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        await db.Models.Where(m => m.Name == name && m.Version == version)
            .ExecuteUpdateAsync(set => set.SetProperty(m => m.OnnxExportHash, hash), cancellationToken);
    }

    public async Task<ModelRow?> GetModelAsync(string name, int? version, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var query = db.Models.AsNoTracking().Where(m => m.Name == name);
        return version is { } v
            ? await query.FirstOrDefaultAsync(m => m.Version == v, cancellationToken)
            : await query.OrderByDescending(m => m.Version).FirstOrDefaultAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<ModelRow>> ListModelsAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.Models.AsNoTracking().OrderBy(m => m.Name).ThenBy(m => m.Version).ToListAsync(cancellationToken);
    }

    /// <summary>Every blob a dataset, a model or a job checkpoint still needs (the rest may be deleted).</summary>
    public async Task<HashSet<string>> ReferencedBlobsAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var result = new HashSet<string>(StringComparer.Ordinal);
        foreach (var dataset in await db.Datasets.AsNoTracking().ToListAsync(cancellationToken))
        {
            result.Add(dataset.ManifestHash);
            foreach (var shard in TrainingJson.ReadManifest(dataset.ManifestJson).Splits.Values.SelectMany(s => s.Shards))
            {
                result.Add(shard.Sha256);
            }
        }

        foreach (var model in await db.Models.AsNoTracking().ToListAsync(cancellationToken))
        {
            result.Add(model.WeightsHash);
            if (model.FileHash is { } file)
            {
                result.Add(file);
            }

            if (model.OnnxExportHash is { } export)
            {
                result.Add(export);
            }

            if (TrainingJson.ReadDescriptor(model.DescriptorJson).Model.Script is { } script)
            {
                result.Add(script);
            }
        }

        foreach (var job in await db.TrainingJobs.AsNoTracking().ToListAsync(cancellationToken))
        {
            if (job.WeightsHash is { } weights)
            {
                result.Add(weights);
            }

            if (job.MomentumHash is { } momentum)
            {
                result.Add(momentum);
            }

            if (TrainingJson.ReadSpec(job.SpecJson).Model.Script is { } script)
            {
                result.Add(script);
            }
        }

        return result;
    }
}

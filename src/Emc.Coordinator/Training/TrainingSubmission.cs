using System.Globalization;
using Emc.Coordinator.Accounts;
using Emc.Coordinator.Blobs;
using Emc.Coordinator.Ledger;
using Emc.Coordinator.Persistence;
using Emc.Core;
using Emc.Core.Data;
using Emc.Core.Training;
using Emc.Ledger;

namespace Emc.Coordinator.Training;

/// <summary>Checks a submitted training job against its dataset and starts it; the front door of <see cref="TrainingService"/>.</summary>
public sealed class TrainingSubmission(TrainingStore store, BlobStore blobs, TrainingService service, LedgerService ledger, TimeProvider time)
{
    /// <summary>Default fraction of the training split held out when the dataset has no test split.</summary>
    public const double DefaultHoldout = 0.1;

    /// <summary>
    /// The job, or the problems that stop it and the HTTP status they call for (400 bad input, 403 another
    /// account's dataset or account, 409 a name or idempotency key another account holds); nothing is
    /// stored then. The job is <paramref name="caller"/>'s unless the operator names another account.
    /// </summary>
    public async Task<(TrainingJobView? Job, IReadOnlyList<string> Errors, bool Existing, int Status)> SubmitAsync(
        TrainingJobSpec? submitted, Caller caller, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (submitted is not null)
        {
            if (submitted.Account is null or "" or "default")
            {
                submitted = submitted with { Account = caller.AccountId };
            }
            else if (!caller.MayAccess(submitted.Account))
            {
                return (null, [$"a user's key submits training jobs only for its own account ('{caller.AccountId}'), not for '{submitted.Account}'; leave account out"], false, 403);
            }
        }

        var errors = TrainingDefaults.Validate(submitted).ToList();
        if (errors.Count > 0 || submitted is null)
        {
            return (null, errors, false, 400);
        }

        if (submitted.IdempotencyKey is { } key && await store.FindByIdempotencyKeyAsync(key, cancellationToken) is { } existing)
        {
            return existing.Account == submitted.Account
                ? (await ViewAsync(existing, cancellationToken), [], true, 200)
                : (null, ["another account's training job has this idempotency key; choose another"], false, 409);
        }

        var spec = TrainingDefaults.Resolve(submitted);
        var dataset = await store.GetDatasetAsync(spec.Dataset, cancellationToken);
        if (dataset is null)
        {
            return (null, [$"no dataset named '{spec.Dataset}'; upload it with `emc data upload`"], false, 400);
        }

        if (!caller.MayAccess(dataset.Owner))
        {
            return (null, [AccessProblems.Message(caller, $"the dataset '{spec.Dataset}'")], false, 403);
        }

        var output = spec.Output ?? (ModelNames.IsValid(spec.Name) ? spec.Name : null);
        if (output is not null && await store.ModelOwnerAsync(output, cancellationToken) is { } holder && holder != spec.Account)
        {
            return (null, [$"the model name '{output}' is taken by another account; choose another output name"], false, 409);
        }

        var manifest = TrainingJson.ReadManifest(dataset.ManifestJson);
        if (!manifest.Splits.TryGetValue("train", out var train))
        {
            return (null, [$"dataset '{spec.Dataset}' has no train split"], false, 400);
        }

        var isText = manifest.Task == DatasetTask.LanguageModeling;
        errors.AddRange(ModelSpecValidator.Validate(spec.Model, train.SampleShape, train.Classes, isText));
        if (spec.Model.Script is { } script && !blobs.Exists(script))
        {
            errors.Add($"model.script names no uploaded TorchScript file ({script})");
        }

        if (spec.Evaluation.Split is { } split && !manifest.Splits.ContainsKey(split))
        {
            errors.Add($"dataset '{spec.Dataset}' has no '{split}' split to evaluate on; it has {string.Join(", ", manifest.Splits.Keys)}");
        }

        if (errors.Count == 0)
        {
            var (trainExamples, _, _, evalCount) = Layout(spec, manifest);
            if (trainExamples < spec.BatchSize)
            {
                errors.Add($"the training split has {trainExamples} examples{(isText ? " (windows)" : "")}, fewer than one batch of {spec.BatchSize}");
            }

            if (evalCount < 1)
            {
                errors.Add("the evaluation split is empty");
            }
        }

        if (errors.Count > 0)
        {
            return (null, errors, false, 400);
        }

        if (spec.Budget is null && spec.Account != AccountIds.Operator)
        {
            return (null, [$"a training job needs a budget (\"budget\": ledger units; 1 EMC = 1000000), reserved from account '{spec.Account}' when it is submitted; see `emc account balance`"], false, 402);
        }

        var number = await store.NextJobNumberAsync(cancellationToken);
        var id = "train-" + number.ToString(CultureInfo.InvariantCulture);
        if (spec.Budget is { } budget)
        {
            // The budget is reserved before anything of the job exists: a refusal leaves nothing behind.
            try
            {
                await ledger.Ledger.OpenEscrowAsync($"escrow:{id}", spec.Account, EscrowId.Job(id), budget, new TransactionReferences { JobId = id }, cancellationToken);
            }
            catch (InsufficientBalanceException ex)
            {
                return (null, [$"the budget of {budget} units is not covered: {ex.Message}; fund the account (the operator: emc account fund) or lower the budget"], false, 402);
            }
        }

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var row = new TrainingJobRow
        {
            Id = id,
            Number = number,
            Name = spec.Name,
            Account = spec.Account,
            SpecJson = TrainingJson.Write(spec),
            State = EmcJson.EnumText(TrainingJobState.Waiting),
            Reason = "planning the first round",
            IdempotencyKey = spec.IdempotencyKey,
            CreatedAtUnixMs = now,
            UpdatedAtUnixMs = now,
        };
        try
        {
            await service.StartAsync(row, r => Activate(r, dataset), cancellationToken);
        }
        catch
        {
            if (spec.Budget is not null)
            {
                await ledger.Ledger.RefundAsync($"refund:{id}", EscrowId.Job(id), new TransactionReferences { JobId = id, Memo = "the job could not start" }, CancellationToken.None);
            }

            throw;
        }

        return (await ViewAsync(row, cancellationToken), [], false, 201);
    }

    /// <summary>The job as the API shows it.</summary>
    public async Task<TrainingJobView> ViewAsync(TrainingJobRow row, CancellationToken cancellationToken)
    {
        var spec = TrainingJson.ReadSpec(row.SpecJson);
        var progress = TrainingJson.ReadProgress(row.ProgressJson);
        var last = await store.LastRoundAsync(row.Id, cancellationToken);
        long? target = null;
        if (await store.GetDatasetAsync(spec.Dataset, cancellationToken) is { } dataset)
        {
            var (trainExamples, _, _, _) = Layout(spec, TrainingJson.ReadManifest(dataset.ManifestJson));
            target = spec.TargetSamples is { } t
                ? spec.Epochs is { } e ? Math.Min(t, (long)Math.Ceiling(e * trainExamples)) : t
                : spec.Epochs is { } epochs ? (long)Math.Ceiling(epochs * trainExamples) : null;
        }

        long? planned = spec.Rounds;
        if (target is { } samples && progress.Samples > 0 && row.Round > 0)
        {
            var perRound = (double)progress.Samples / row.Round;
            var bySamples = (long)Math.Ceiling(samples / perRound);
            planned = planned is { } r ? Math.Min(r, bySamples) : bySamples;
        }

        return new TrainingJobView
        {
            Id = row.Id,
            Name = row.Name,
            Account = row.Account,
            State = EmcJson.TryParseEnum<TrainingJobState>(row.State, out var state) && state is { } s ? s : TrainingJobState.Failed,
            Reason = row.Reason,
            Spec = spec,
            Round = row.Round,
            PlannedRounds = planned,
            Samples = progress.Samples,
            TargetSamples = target,
            RoundJob = row.RoundJobId,
            Last = last is null ? null : TrainingJson.ReadRound(last.SummaryJson),
            Final = progress.Final,
            Nodes = progress.Nodes,
            Model = row.ModelName is null ? null : $"{row.ModelName}:{row.ModelVersion}",
            CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAtUnixMs),
            UpdatedAt = DateTimeOffset.FromUnixTimeMilliseconds(row.UpdatedAtUnixMs),
            FinishedAt = row.FinishedAtUnixMs is { } finished ? DateTimeOffset.FromUnixTimeMilliseconds(finished) : null,
        };
    }

    internal static ActiveJob Activate(TrainingJobRow row, DatasetRow dataset)
    {
        var spec = TrainingJson.ReadSpec(row.SpecJson);
        var manifest = TrainingJson.ReadManifest(dataset.ManifestJson);
        var (trainExamples, evalSplit, evalFirst, evalCount) = Layout(spec, manifest);
        return new ActiveJob
        {
            Row = row,
            Spec = spec,
            Manifest = manifest,
            ManifestHash = dataset.ManifestHash,
            Progress = TrainingJson.ReadProgress(row.ProgressJson),
            TrainExamples = trainExamples,
            EvalSplit = evalSplit,
            EvalFirst = evalFirst,
            EvalCount = evalCount,
            IsText = manifest.Task == DatasetTask.LanguageModeling,
        };
    }

    /// <summary>
    /// Which examples train and which evaluate. Text is cut into non-overlapping windows of the
    /// model's context; a held-out fraction is the tail of the training split.
    /// </summary>
    internal static (long TrainExamples, string EvalSplit, long EvalFirst, long EvalCount) Layout(TrainingJobSpec spec, DatasetManifest manifest)
    {
        var isText = manifest.Task == DatasetTask.LanguageModeling;
        var context = spec.Model.Context ?? 128;
        long Units(SplitManifest split) => isText ? Math.Max(0, (split.Count - 1) / context) : split.Count;

        var train = Units(manifest.Splits["train"]);
        var evalSplit = spec.Evaluation.Split ?? (spec.Evaluation.HoldoutFraction is null && manifest.Splits.ContainsKey("test") ? "test" : null);
        if (evalSplit is not null && manifest.Splits.TryGetValue(evalSplit, out var eval))
        {
            return (train, evalSplit, 0, Units(eval));
        }

        var held = (long)Math.Round(train * (spec.Evaluation.HoldoutFraction ?? DefaultHoldout));
        return (train - held, "train", train - held, held);
    }
}

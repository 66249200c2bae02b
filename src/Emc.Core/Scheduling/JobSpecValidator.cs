using System.Globalization;

namespace Emc.Core.Scheduling;

/// <summary>Checks a submitted job before anything is stored; every problem gets a sentence a user can act on.</summary>
public static class JobSpecValidator
{
    public const int MaxTasksPerJob = 100_000;
    public const int MaxInputChars = 64 * 1024;
    public const int MaxNameChars = 200;
    public const int MaxIdChars = 64;
    public const int MaxLabels = 32;

    /// <summary>Most node ids a demand may name.</summary>
    public const int MaxNodes = 1024;
    public const int MaxCacheKeys = 64;
    public const int MaxRetriesLimit = 20;
    public const int MaxGangSize = 4096;

    /// <summary>The problems with <paramref name="spec"/>; empty when it is valid.</summary>
    public static IReadOnlyList<string> Validate(JobSpec? spec)
    {
        var errors = new List<string>();
        if (spec is null)
        {
            errors.Add("the job is missing");
            return errors;
        }

        if (spec.Name.Length > MaxNameChars || ContainsControl(spec.Name))
        {
            errors.Add($"name must be at most {MaxNameChars} printable characters");
        }

        if (!IsIdentifier(spec.Account))
        {
            errors.Add($"account must be 1 to {MaxIdChars} characters of letters, digits, '.', '_', '-' or ':'");
        }

        if (!Enum.IsDefined(spec.Priority))
        {
            errors.Add("priority must be low, normal or high");
        }

        ValidateDemand(spec.Demand, errors);

        if (spec.Tasks is null || spec.Tasks.Count == 0)
        {
            errors.Add("a job needs at least one task");
        }
        else if (spec.Tasks.Count > MaxTasksPerJob)
        {
            errors.Add($"a job has at most {MaxTasksPerJob.ToString("N0", CultureInfo.InvariantCulture)} tasks; split it into several jobs");
        }
        else
        {
            for (var i = 0; i < spec.Tasks.Count; i++)
            {
                var task = spec.Tasks[i];
                if (task is null || !IsIdentifier(task.Kind))
                {
                    errors.Add($"tasks[{i}].kind must be a name such as \"benchmark\"");
                    break;
                }

                if (task.Input is null || task.Input.Length > MaxInputChars)
                {
                    errors.Add($"tasks[{i}].input must be at most {MaxInputChars} characters; put larger inputs in a blob and pass its hash");
                    break;
                }
            }
        }

        if (spec.Gang && spec.Demand is { Shared: true })
        {
            errors.Add("a gang cannot be shared: its members need task slots of their own");
        }

        if (spec.Elastic && !spec.Gang)
        {
            errors.Add("elastic applies to gang jobs only");
        }

        if (spec.Gang && spec.Tasks is { Count: > MaxGangSize })
        {
            errors.Add($"a gang has at most {MaxGangSize} tasks");
        }

        if (spec.MaxRetries is < 0 or > MaxRetriesLimit)
        {
            errors.Add($"maxRetries must be between 0 and {MaxRetriesLimit}");
        }

        if (spec.LeaseDuration is { } lease && (lease < TimeSpan.FromSeconds(1) || lease > TimeSpan.FromDays(1)))
        {
            errors.Add("leaseDuration must be between 1 second and 1 day");
        }

        if (spec.GangTimeout is { } gangTimeout && (gangTimeout < TimeSpan.FromSeconds(1) || gangTimeout > TimeSpan.FromDays(1)))
        {
            errors.Add("gangTimeout must be between 1 second and 1 day");
        }

        if (spec.IdempotencyKey is not null && (spec.IdempotencyKey.Length is 0 or > 128 || ContainsControl(spec.IdempotencyKey)))
        {
            errors.Add("idempotencyKey must be 1 to 128 printable characters");
        }

        return errors;
    }

    private static void ValidateDemand(ResourceDemand? demand, List<string> errors)
    {
        if (demand is null)
        {
            errors.Add("demand is missing");
            return;
        }

        if (demand.Device is { } device && !Enum.IsDefined(device))
        {
            errors.Add("demand.device must be cpu or cuda");
        }

        if (demand.DeviceMemoryBytes < 0)
        {
            errors.Add("demand.deviceMemoryBytes must not be negative");
        }

        if (!double.IsFinite(demand.MinGflops) || demand.MinGflops < 0)
        {
            errors.Add("demand.minGflops must be a finite number ≥ 0");
        }

        if (demand.MaxPrice < 0)
        {
            errors.Add("demand.maxPrice must not be negative");
        }

        if (demand.SpreadGroup is not null && !IsIdentifier(demand.SpreadGroup))
        {
            errors.Add($"demand.spreadGroup must be 1 to {MaxIdChars} characters of letters, digits, '.', '_', '-' or ':'");
        }

        if (demand.Labels is null || demand.Labels.Count > MaxLabels
            || demand.Labels.Any(pair => !IsIdentifier(pair.Key) || pair.Value is null || pair.Value.Length > MaxIdChars || ContainsControl(pair.Value)))
        {
            errors.Add($"demand.labels must be at most {MaxLabels} name=value pairs of short printable text");
        }

        if (demand.Nodes is null || demand.Nodes.Count > MaxNodes || demand.Nodes.Any(node => !IsIdentifier(node)))
        {
            errors.Add($"demand.nodes must be at most {MaxNodes} node ids");
        }

        if (demand.CacheKeys is null || demand.CacheKeys.Count > MaxCacheKeys || demand.CacheKeys.Any(key => !IsIdentifier(key, 128)))
        {
            errors.Add($"demand.cacheKeys must be at most {MaxCacheKeys} content keys");
        }
    }

    /// <summary>1–64 characters of letters, digits and . _ - :</summary>
    public static bool IsIdentifier(string? text) => IsIdentifier(text, MaxIdChars);

    internal static bool IsIdentifier(string? text, int maxChars)
    {
        if (string.IsNullOrEmpty(text) || text.Length > maxChars)
        {
            return false;
        }

        foreach (var c in text)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or ':'))
            {
                return false;
            }
        }

        return true;
    }

    private static bool ContainsControl(string text) => text.Any(char.IsControl);
}

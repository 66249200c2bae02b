using System.Collections.Concurrent;
using Emc.Core.Inference;

namespace Emc.Coordinator.Inference;

/// <summary>One answered OpenAI-compatible request, as metered.</summary>
/// <param name="DeploymentId">The deployment that answered.</param>
/// <param name="Model">The model name the client asked for.</param>
/// <param name="ReplicaId">The replica (its serve lease "{task}#{attempt}", which names the node through the scheduler).</param>
/// <param name="Usage">The tokens used; null when the answer came without usage (unmetered).</param>
/// <param name="At">When it was answered.</param>
public sealed record MeteredRequest(string DeploymentId, string Model, string ReplicaId, TokenUsage? Usage, DateTimeOffset At);

/// <summary>
/// Where the OpenAI-compatible API reports the use of every request it answered (status 200): byte-level
/// models with the tokens the coordinator counted, external engines with the usage the engine reported.
/// The default keeps totals per deployment in memory; a ledger can take its place (or wrap it) to charge
/// callers and pay nodes.
/// </summary>
public interface IUsageMeter
{
    /// <summary>Records one answered request. Called on the request path: it must not block.</summary>
    void Record(MeteredRequest request);

    /// <summary>The totals of a deployment since the coordinator started.</summary>
    DeploymentUsage GetUsage(string deploymentId);
}

/// <summary>An <see cref="IUsageMeter"/> that keeps totals per deployment in memory.</summary>
public sealed class InMemoryUsageMeter : IUsageMeter
{
    private readonly ConcurrentDictionary<string, Totals> _totals = new(StringComparer.Ordinal);

    public void Record(MeteredRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var totals = _totals.GetOrAdd(request.DeploymentId, static _ => new Totals());
        Interlocked.Increment(ref totals.Requests);
        if (request.Usage is { } usage)
        {
            Interlocked.Add(ref totals.PromptTokens, usage.PromptTokens);
            Interlocked.Add(ref totals.CompletionTokens, usage.CompletionTokens);
        }
        else
        {
            Interlocked.Increment(ref totals.Unmetered);
        }
    }

    public DeploymentUsage GetUsage(string deploymentId) =>
        _totals.TryGetValue(deploymentId, out var totals)
            ? new DeploymentUsage
            {
                Requests = Interlocked.Read(ref totals.Requests),
                PromptTokens = Interlocked.Read(ref totals.PromptTokens),
                CompletionTokens = Interlocked.Read(ref totals.CompletionTokens),
                Unmetered = Interlocked.Read(ref totals.Unmetered),
            }
            : new DeploymentUsage();

    private sealed class Totals
    {
        public long Requests;
        public long PromptTokens;
        public long CompletionTokens;
        public long Unmetered;
    }
}

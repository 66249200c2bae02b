using System.Text.Json;
using Emc.Core;
using Emc.Core.Inference;
using Emc.Node.Work;

namespace Emc.Node.Inference;

/// <summary>
/// Runs leases of kind "serve": one replica of a deployment, for as long as the lease lasts. The lease
/// never completes by itself; it ends when the coordinator revokes it (scale down, undeploy), and fails
/// retryably when the node drains or loses the model, so that the scheduler places it elsewhere.
/// </summary>
public sealed class ServeExecutor(InferenceHost host) : ITaskExecutor
{
    public string Kind => ServeTaskInput.Kind;

    public async Task<string> RunAsync(TaskContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ServeTaskInput input;
        try
        {
            input = JsonSerializer.Deserialize<ServeTaskInput>(context.Input, EmcJson.Options)
                ?? throw new JsonException("empty serve task");
        }
        catch (JsonException ex)
        {
            throw new TaskFailedException($"the serve task's input is not valid: {ex.Message}", retryable: false, ex);
        }

        await host.RunReplicaAsync(context.LeaseId, input, context.Device, cancellationToken);
        return "";
    }
}

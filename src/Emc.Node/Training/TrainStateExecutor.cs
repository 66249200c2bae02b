using System.Text.Json;
using Emc.Core;
using Emc.Core.Training;
using Emc.Node.Work;

namespace Emc.Node.Training;

/// <summary>
/// "train-state": uploads an inner optimizer state this node committed to in one of its round manifests
/// (<see cref="StateRequest"/>), so that the round can be replayed elsewhere. A state the node no longer
/// holds is a failure the coordinator counts against it: it committed to keeping it.
/// </summary>
public sealed class TrainStateExecutor(TrainStateStore states, BlobCache blobs) : ITaskExecutor
{
    /// <inheritdoc />
    public string Kind => StateRequest.TaskKind;

    /// <inheritdoc />
    public async Task<string> RunAsync(TaskContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        StateRequest request;
        try
        {
            request = JsonSerializer.Deserialize<StateRequest>(context.Input, EmcJson.Options) ?? throw new JsonException("empty");
        }
        catch (JsonException ex)
        {
            throw new TaskFailedException($"the state request is not valid: {ex.Message}", retryable: false);
        }

        var path = states.PathOf(request.State)
            ?? throw new TaskFailedException($"this node holds no committed state {request.State} (it keeps its last {states.Keep})", retryable: false);
        var bytes = await File.ReadAllBytesAsync(path, cancellationToken);
        var hash = await blobs.UploadAsync(bytes, cancellationToken);
        return JsonSerializer.Serialize(new StateReport(hash), EmcJson.Options);
    }
}

using System.Text.Json;
using Emc.Compute;
using Emc.Core;
using Emc.Core.Training;
using Emc.Core.Verification;
using Emc.Node.Training;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace Emc.Node.Work;

/// <summary>
/// "challenge": computes a hardware challenge (<see cref="ChallengeWork"/>, a chain of matrix products) on
/// the lease's device, answers with the hash of the result as soon as it has it — the coordinator times
/// the answer against the node's claimed benchmark — and then uploads the result, which the coordinator
/// checks with Freivalds' algorithm. The upload is not timed, so a slow link does not look like slow hardware.
/// </summary>
public sealed partial class ChallengeExecutor : ITaskExecutor, IDisposable
{
    private readonly BlobCache _blobs;
    private readonly ILogger _logger;
    private readonly TorchThread _torch = new("emc-challenge");
    private readonly CancellationTokenSource _disposing = new();
    private readonly Lock _lock = new();
    private Task _upload = Task.CompletedTask;

    public ChallengeExecutor(BlobCache blobs, ILogger logger)
    {
        _blobs = blobs;
        _logger = logger;
    }

    /// <inheritdoc />
    public string Kind => ChallengeWork.TaskKind;

    /// <summary>Torch threads; 0 leaves libtorch's default. The node's admission benchmark ran with the same setting.</summary>
    public int Threads { get; init; }

    /// <summary>The upload of the last result (for tests and an orderly shutdown).</summary>
    public Task LastUpload
    {
        get
        {
            lock (_lock)
            {
                return _upload;
            }
        }
    }

    /// <inheritdoc />
    public async Task<string> RunAsync(TaskContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ChallengeWork work;
        try
        {
            work = JsonSerializer.Deserialize<ChallengeWork>(context.Input, EmcJson.Options) ?? throw new JsonException("empty");
        }
        catch (JsonException ex)
        {
            throw new TaskFailedException($"the challenge is not valid: {ex.Message}", retryable: false);
        }

        var errors = MatmulChallenge.Validate(work);
        if (errors.Count > 0)
        {
            throw new TaskFailedException($"the challenge is not valid: {string.Join("; ", errors)}", retryable: false);
        }

        var threads = Threads;
        float[] result;
        try
        {
            result = await _torch.RunAsync(
                () =>
                {
                    // libtorch is loaded (and fixed up) before the first torch call, the thread setting included.
                    TorchRuntime.EnsureInitialized();
                    if (threads > 0)
                    {
                        torch.set_num_threads(threads);
                    }

                    return ChallengeRunner.Run(work, context.Device, cancellationToken);
                },
                cancellationToken);
        }
        catch (ArgumentException ex)
        {
            throw new TaskFailedException($"the challenge cannot run here: {ex.Message}", retryable: false);
        }

        var encoded = WeightsCodec.Encode(result);
        var hash = Core.Crypto.ContentHash.Of(encoded);
        var stopping = _disposing.Token;
        lock (_lock)
        {
            _upload = UploadAsync(encoded, hash, stopping);
        }

        return JsonSerializer.Serialize(new ChallengeReport(hash), EmcJson.Options);
    }

    public void Dispose()
    {
        _disposing.Cancel();
        _torch.Dispose();
    }

    private async Task UploadAsync(byte[] encoded, string hash, CancellationToken stopping)
    {
        try
        {
            await Task.Yield();
            await _blobs.UploadAsync(encoded, stopping);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or InvalidDataException or OperationCanceledException)
        {
            Log.UploadFailed(_logger, hash, ex.Message);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 321, Level = LogLevel.Warning, Message = "The result {Hash} of a hardware challenge could not be uploaded: {Reason}")]
        public static partial void UploadFailed(ILogger logger, string hash, string reason);
    }
}

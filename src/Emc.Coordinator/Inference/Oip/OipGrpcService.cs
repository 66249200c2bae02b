using Emc.Coordinator.Accounts;
using Emc.Coordinator.Hosting;
using Emc.Core.Inference;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Proto = Emc.Contracts.Inference.V2;

namespace Emc.Coordinator.Inference.Oip;

/// <summary>
/// The Open Inference Protocol v2 over gRPC (KServe's <c>GRPCInferenceService</c>), a thin adapter over
/// <see cref="IInferenceBackend"/>. Errors are <see cref="RpcException"/>s: InvalidArgument (bad input),
/// NotFound (unknown model), ResourceExhausted (over the limits), Unavailable (no ready replica,
/// overloaded) and DeadlineExceeded (the request's deadline passed), with the same messages as REST.
/// </summary>
/// <remarks>
/// A request's deadline is the earlier of its gRPC deadline and the <c>timeout</c> parameter (or the
/// default), capped by <see cref="OipOptions.MaxTimeout"/>. A model that is unknown is simply not ready
/// for <c>ModelReady</c>, as in Triton; <c>ModelMetadata</c> answers NotFound for it. Outputs come in
/// <c>raw_output_contents</c> when the request sent <c>raw_input_contents</c> (Triton's clients read only
/// those) or an output is FP16/BF16; otherwise in typed <c>contents</c>.
/// </remarks>
public sealed class OipGrpcService : Proto.GRPCInferenceService.GRPCInferenceServiceBase
{
    private readonly IInferenceBackend _backend;
    private readonly OipOptions _options;
    private readonly TimeProvider _time;
    private readonly ReadinessState _readiness;
    private readonly ILogger<OipGrpcService> _logger;
    private readonly InferenceAccess _access;

    public OipGrpcService(IInferenceBackend backend, InferenceAccess access, IOptions<OipOptions> options, TimeProvider time, ReadinessState readiness, ILogger<OipGrpcService> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _backend = backend;
        _access = access;
        _options = options.Value;
        _time = time;
        _readiness = readiness;
        _logger = logger;
    }

    [Microsoft.AspNetCore.Authorization.AllowAnonymous]
    public override Task<Proto.ServerLiveResponse> ServerLive(Proto.ServerLiveRequest request, ServerCallContext context) =>
        Task.FromResult(new Proto.ServerLiveResponse { Live = true });

    [Microsoft.AspNetCore.Authorization.AllowAnonymous]
    public override Task<Proto.ServerReadyResponse> ServerReady(Proto.ServerReadyRequest request, ServerCallContext context) =>
        Task.FromResult(new Proto.ServerReadyResponse { Ready = _readiness.IsReady });

    public override Task<Proto.ServerMetadataResponse> ServerMetadata(Proto.ServerMetadataRequest request, ServerCallContext context)
    {
        var metadata = OipRestApi.ServerMetadata(_options);
        var response = new Proto.ServerMetadataResponse { Name = metadata.Name, Version = metadata.Version };
        response.Extensions.AddRange(metadata.Extensions);
        return Task.FromResult(response);
    }

    public override async Task<Proto.ModelReadyResponse> ModelReady(Proto.ModelReadyRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            // A model this caller may not know of is simply not ready, as an unknown one is.
            var access = await _access.CheckAsync(context.GetHttpContext().GetCaller(), request.Name, context.CancellationToken);
            if (access == ModelAccess.Unknown)
            {
                return new Proto.ModelReadyResponse { Ready = false };
            }

            await _access.EnsureAsync(context.GetHttpContext().GetCaller(), request.Name, Version(request.Version), context.CancellationToken);
            var ready = await _backend.IsReadyAsync(request.Name, Version(request.Version), context.CancellationToken);
            return new Proto.ModelReadyResponse { Ready = ready };
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw Fail(request.Name, ex, null);
        }
    }

    public override async Task<Proto.ModelMetadataResponse> ModelMetadata(Proto.ModelMetadataRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            var version = Version(request.Version);
            await _access.EnsureAsync(context.GetHttpContext().GetCaller(), request.Name, version, context.CancellationToken);
            var metadata = await _backend.GetMetadataAsync(request.Name, version, context.CancellationToken)
                ?? throw OipException.UnknownModel(request.Name, version);
            return OipGrpcMapping.ToMessage(metadata);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw Fail(request.Name, ex, null);
        }
    }

    public override async Task<Proto.ModelInferResponse> ModelInfer(Proto.ModelInferRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        DateTimeOffset? deadline = null;
        try
        {
            if (string.IsNullOrEmpty(request.ModelName))
            {
                throw new OipException(OipErrorKind.BadRequest, "model_name is empty");
            }

            await _access.EnsureAsync(context.GetHttpContext().GetCaller(), request.ModelName, Version(request.ModelVersion), context.CancellationToken);
            var inferRequest = OipGrpcMapping.ToRequest(request, _options.Limits);
            var ours = _options.DeadlineFor(inferRequest, _time.GetUtcNow());
            deadline = context.Deadline < ours.UtcDateTime ? new DateTimeOffset(context.Deadline, TimeSpan.Zero) : ours;
            var response = await _backend.InferAsync(request.ModelName, Version(request.ModelVersion), inferRequest, deadline.Value, context.CancellationToken);
            return OipGrpcMapping.ToMessage(response, inferRequest.Id, raw: request.RawInputContents.Count > 0);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw Fail(request.ModelName, ex, deadline);
        }
    }

    private static string? Version(string version) => string.IsNullOrEmpty(version) ? null : version;

    private RpcException Fail(string model, Exception exception, DateTimeOffset? deadline)
    {
        var rpc = OipErrors.ToRpc(exception, deadline, _time.GetUtcNow());
        if (rpc.StatusCode == StatusCode.Internal)
        {
            OipLog.Unexpected(_logger, "gRPC", model, exception);
        }
        else
        {
            OipLog.RequestFailed(_logger, "gRPC", model, (int)rpc.StatusCode, rpc.Status.Detail);
        }

        return rpc;
    }
}

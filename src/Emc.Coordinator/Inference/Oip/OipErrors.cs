using Emc.Core.Inference;
using Grpc.Core;
using Microsoft.AspNetCore.Http;

namespace Emc.Coordinator.Inference.Oip;

/// <summary>How the front ends turn a failure into the protocol's status and message.</summary>
internal static class OipErrors
{
    /// <summary>The HTTP status and client message of <paramref name="exception"/>; 500 only for what no client caused.</summary>
    public static (int Status, string Message) Describe(Exception exception) => exception switch
    {
        OipException oip => (oip.StatusCode, oip.Message),
        BadHttpRequestException bad => (bad.StatusCode, bad.Message),
        OperationCanceledException or TimeoutException => (StatusCodes.Status503ServiceUnavailable, "the request did not finish before its deadline"),
        _ => (StatusCodes.Status500InternalServerError, "internal error"),
    };

    /// <summary>
    /// <paramref name="exception"/> as a gRPC status: 400 InvalidArgument, 401 Unauthenticated, 402 ResourceExhausted, 403 PermissionDenied, 404 NotFound, 413
    /// ResourceExhausted, 503 Unavailable — or DeadlineExceeded when it is a 503 that came after
    /// <paramref name="deadline"/> had passed.
    /// </summary>
    public static RpcException ToRpc(Exception exception, DateTimeOffset? deadline, DateTimeOffset now)
    {
        var (status, message) = Describe(exception);
        var code = status switch
        {
            StatusCodes.Status400BadRequest => StatusCode.InvalidArgument,
            StatusCodes.Status401Unauthorized => StatusCode.Unauthenticated,
            StatusCodes.Status402PaymentRequired => StatusCode.ResourceExhausted,
            StatusCodes.Status403Forbidden => StatusCode.PermissionDenied,
            StatusCodes.Status404NotFound => StatusCode.NotFound,
            StatusCodes.Status413PayloadTooLarge => StatusCode.ResourceExhausted,
            StatusCodes.Status503ServiceUnavailable when deadline is { } d && now >= d => StatusCode.DeadlineExceeded,
            StatusCodes.Status503ServiceUnavailable => StatusCode.Unavailable,
            >= 400 and < 500 => StatusCode.InvalidArgument,
            _ => StatusCode.Internal,
        };
        return new RpcException(new Status(code, message));
    }
}

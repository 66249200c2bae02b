using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Inference.Oip;

/// <summary>Log events of the Open Inference Protocol front ends (event ids 2500–2599).</summary>
internal static partial class OipLog
{
    [LoggerMessage(EventId = 2500, Level = LogLevel.Debug, Message = "OIP {Transport} request for model {Model} failed with {Status}: {Message}")]
    public static partial void RequestFailed(ILogger logger, string transport, string model, int status, string message);

    [LoggerMessage(EventId = 2501, Level = LogLevel.Error, Message = "OIP {Transport} request for model {Model} failed unexpectedly.")]
    public static partial void Unexpected(ILogger logger, string transport, string model, Exception exception);

    [LoggerMessage(EventId = 2502, Level = LogLevel.Information, Message = "Open Inference Protocol served over REST at /v2 and over gRPC on the node gateway port(s) {Ports}.")]
    public static partial void Mapped(ILogger logger, string ports);

    [LoggerMessage(EventId = 2503, Level = LogLevel.Information, Message = "In-process ONNX backend: model {Model} version {Version} loaded ({Inputs} inputs, {Outputs} outputs).")]
    public static partial void ModelLoaded(ILogger logger, string model, string version, int inputs, int outputs);
}

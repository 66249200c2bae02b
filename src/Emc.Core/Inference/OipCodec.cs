using System.Buffers;
using System.Globalization;

namespace Emc.Core.Inference;

/// <summary>
/// Reads and writes Open Inference Protocol v2 REST bodies: inference requests and responses (JSON, and
/// the binary tensor data extension), model and server metadata, and errors.
/// <para>
/// A body with binary data is a JSON header of <see cref="HeaderLengthName"/> bytes followed by the
/// binary tensors, in tensor order, of the tensors whose parameters carry <c>binary_data_size</c>:
/// fixed-size elements as little-endian values, BYTES elements each as a 4-byte little-endian length
/// and its bytes. Without that header the whole body is JSON.
/// </para>
/// <para>
/// Readers throw <see cref="OipException"/> (400 for malformed bodies, 413 beyond <see cref="OipLimits"/>)
/// with a message fit for the client. Tensors read from a body may point into its memory, which must
/// therefore stay unchanged while the request is in use.
/// </para>
/// </summary>
public static class OipCodec
{
    /// <summary>The HTTP header giving the JSON part's length in a body with binary tensor data.</summary>
    public const string HeaderLengthName = "Inference-Header-Content-Length";

    /// <summary>The extension's name in the server metadata's <c>extensions</c>.</summary>
    public const string BinaryTensorDataExtension = "binary_tensor_data";

    /// <summary>The value of the <see cref="HeaderLengthName"/> header; null when it is absent or empty, a 400 when it is not a non-negative integer.</summary>
    public static long? ParseHeaderLength(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        return long.TryParse(value.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var length)
            ? length
            : throw OipException.Bad($"{HeaderLengthName} '{value}' is not a non-negative integer");
    }

    /// <summary>Reads an inference request; <paramref name="headerLength"/> is the <see cref="HeaderLengthName"/> header, if any.</summary>
    public static InferRequest ReadRequest(ReadOnlyMemory<byte> body, long? headerLength = null, OipLimits? limits = null)
    {
        limits ??= OipLimits.Default;
        limits.Validate();
        return OipJsonReader.ReadRequest(body, headerLength, limits);
    }

    /// <summary>Reads an inference response (the client's side); <paramref name="headerLength"/> as for <see cref="ReadRequest"/>.</summary>
    public static InferResponse ReadResponse(ReadOnlyMemory<byte> body, long? headerLength = null, OipLimits? limits = null)
    {
        limits ??= OipLimits.Default;
        limits.Validate();
        return OipJsonReader.ReadResponse(body, headerLength, limits);
    }

    /// <summary>
    /// Writes an inference request (the client's side), every input as binary data when
    /// <paramref name="binaryInputs"/>. Returns the JSON part's length for the <see cref="HeaderLengthName"/>
    /// header, or null when nothing follows the JSON.
    /// </summary>
    public static long? WriteRequest(InferRequest request, IBufferWriter<byte> output, bool binaryInputs = false)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(output);
        return OipJsonWriter.WriteRequest(request, output, binaryInputs);
    }

    /// <summary>
    /// Writes an inference response. An output goes in the binary part, with <c>binary_data_size</c> in
    /// its parameters, when <paramref name="request"/> asks for it (<see cref="InferRequest.WantsBinaryOutput"/>);
    /// others are JSON. Returns the JSON part's length for the <see cref="HeaderLengthName"/> header, or
    /// null when every output is JSON. Throws <see cref="InvalidOperationException"/> for a BYTES output
    /// that is not UTF-8 and must go as JSON.
    /// </summary>
    public static long? WriteResponse(InferResponse response, IBufferWriter<byte> output, InferRequest? request = null)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(output);
        return OipJsonWriter.WriteResponse(response, output, request);
    }

    /// <summary>Writes the answer to a model metadata request.</summary>
    public static void WriteModelMetadata(ModelMetadata metadata, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(output);
        OipJsonWriter.WriteModelMetadata(metadata, output);
    }

    /// <summary>Reads model metadata; shapes may hold -1 for variable dimensions.</summary>
    public static ModelMetadata ReadModelMetadata(ReadOnlySpan<byte> json) => OipJsonReader.ReadModelMetadata(json);

    /// <summary>Writes the answer to a server metadata request.</summary>
    public static void WriteServerMetadata(ServerMetadata metadata, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(output);
        OipJsonWriter.WriteServerMetadata(metadata, output);
    }

    /// <summary>Reads server metadata.</summary>
    public static ServerMetadata ReadServerMetadata(ReadOnlySpan<byte> json) => OipJsonReader.ReadServerMetadata(json);

    /// <summary>Writes the protocol's error body, <c>{"error": message}</c>.</summary>
    public static void WriteError(string message, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(output);
        OipJsonWriter.WriteError(message, output);
    }

    /// <summary>The protocol's error body, <c>{"error": message}</c>, as UTF-8 bytes.</summary>
    public static byte[] ErrorBody(string message)
    {
        var buffer = new ArrayBufferWriter<byte>();
        WriteError(message, buffer);
        return buffer.WrittenSpan.ToArray();
    }
}

namespace Emc.Core.Inference;

/// <summary>
/// Bounds on what one request or response body may hold, checked while parsing and before any buffer
/// for tensor data is allocated, so that a shape such as [1000000000, 1000000000] costs nothing but a 413.
/// </summary>
public sealed class OipLimits
{
    /// <summary>The defaults below.</summary>
    public static OipLimits Default { get; } = new();

    /// <summary>The most bytes of tensor data over all tensors of one body (BYTES count their strings' lengths). Default 64 MiB; at most <see cref="Array.MaxLength"/>.</summary>
    public long MaxTotalBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>The most elements over all tensors of one body. Default 16 Mi (16 777 216).</summary>
    public long MaxTotalElements { get; init; } = 16L * 1024 * 1024;

    /// <summary>The most tensors in one body. Default 1024.</summary>
    public int MaxTensors { get; init; } = 1024;

    /// <summary>The most dimensions of one tensor. Default 32.</summary>
    public int MaxRank { get; init; } = 32;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(MaxTotalBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxTotalBytes, Array.MaxLength);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxTotalElements);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxTensors);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxRank);
    }
}

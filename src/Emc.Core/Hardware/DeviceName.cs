namespace Emc.Core.Hardware;

/// <summary>The kinds of compute device a node offers.</summary>
public enum DeviceKind
{
    Cpu,
    Cuda,
}

/// <summary>Parses device strings: "cpu", "cuda" (= cuda:0) and "cuda:N".</summary>
public static class DeviceName
{
    /// <summary>Parses a device string; false when it is neither cpu nor cuda[:N].</summary>
    public static bool TryParse(string? text, out DeviceKind kind, out int index)
    {
        kind = DeviceKind.Cpu;
        index = 0;
        if (text == "cpu")
        {
            return true;
        }

        if (text == "cuda")
        {
            kind = DeviceKind.Cuda;
            return true;
        }

        if (text is not null && text.StartsWith("cuda:", StringComparison.Ordinal)
            && text.Length <= 8 && int.TryParse(text.AsSpan(5), System.Globalization.NumberStyles.None, null, out index))
        {
            kind = DeviceKind.Cuda;
            return true;
        }

        return false;
    }

    /// <summary>Normalises "cuda" to "cuda:0"; throws <see cref="ArgumentException"/> on anything else unknown.</summary>
    public static string Normalize(string text) =>
        TryParse(text, out var kind, out var index)
            ? kind == DeviceKind.Cpu ? "cpu" : $"cuda:{index}"
            : throw new ArgumentException($"'{text}' is not a device: use cpu, cuda or cuda:N.", nameof(text));
}

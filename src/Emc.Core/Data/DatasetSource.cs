namespace Emc.Core.Data;

/// <summary>
/// One uploaded file: its name as the user gave it (the split and, for .npy, the role come from it)
/// and its bytes, which may be gzip-compressed whatever the format.
/// </summary>
public sealed record DatasetSource(string FileName, byte[] Content);

namespace Emc.Compute;

/// <summary>The outcome of <see cref="TorchRuntime.EnsureInitialized"/>, for start-up logs.</summary>
/// <param name="NativeLibraryPath">The <c>libLibTorchSharp.so</c> the runtime resolves, or null when none was found (or not on Linux).</param>
/// <param name="Patch">What was done to that library.</param>
/// <param name="LoadedFrom">The file actually loaded: the patched copy for <see cref="TorchNativePatch.PatchedCopy"/>, else <paramref name="NativeLibraryPath"/>.</param>
/// <param name="LibTorchVersion">The libtorch version TorchSharp reports.</param>
/// <param name="InitializationTime">How long locating, patching and loading libtorch took.</param>
public sealed record TorchRuntimeInfo(
    string? NativeLibraryPath,
    TorchNativePatch Patch,
    string? LoadedFrom,
    string LibTorchVersion,
    TimeSpan InitializationTime);

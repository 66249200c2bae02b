using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Security.Cryptography;
using Emc.Compute.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Emc.Compute;

/// <summary>
/// Loads libtorch for TorchSharp, repairing <c>libLibTorchSharp.so</c> on Linux distributions
/// whose libstdc++ is older than the one TorchSharp was built against, and answers questions
/// about the devices libtorch can use.
/// </summary>
/// <remarks>
/// Call <see cref="EnsureInitialized"/> before any other TorchSharp use in the process: once
/// libtorch has failed to load, the process cannot retry with a repaired library.
/// </remarks>
public static class TorchRuntime
{
    private const string LibraryFileName = "libLibTorchSharp.so";
    private const string LibraryImportName = "LibTorchSharp";

    private static readonly Lazy<TorchRuntimeInfo> _initialization =
        new(Initialize, LazyThreadSafetyMode.ExecutionAndPublication);

    private static readonly Lazy<int> _cudaDeviceCount =
        new(CountCudaDevices, LazyThreadSafetyMode.ExecutionAndPublication);

    private static IntPtr _patchedCopyHandle;

    /// <summary>Whether libtorch can use at least one CUDA device. Initialises the runtime first.</summary>
    public static bool CudaAvailable => CudaDeviceCount > 0;

    /// <summary>The number of CUDA devices libtorch can use (0 with the CPU-only build). Initialises the runtime first.</summary>
    public static int CudaDeviceCount => _cudaDeviceCount.Value;

    /// <summary>
    /// Makes TorchSharp usable: on Linux, finds the <c>libLibTorchSharp.so</c> the runtime will
    /// load, weakens its <c>GLIBCXX_3.4.32</c> need (in place, or in a per-user cached copy when
    /// the file cannot be written), then loads libtorch and runs a trivial operation.
    /// Idempotent and thread-safe; the first call does the work, later calls return its outcome
    /// (or rethrow its failure).
    /// </summary>
    /// <returns>Where libtorch was loaded from and what was done to make it load.</returns>
    /// <exception cref="InvalidOperationException">libtorch could not be loaded; the message says why.</exception>
    public static TorchRuntimeInfo EnsureInitialized() => _initialization.Value;

    /// <summary>
    /// Parses a device string — <c>cpu</c>, <c>cuda</c> (the current CUDA device) or
    /// <c>cuda:N</c> — into a TorchSharp <see cref="Device"/>. Parsing does not check that the
    /// device exists.
    /// </summary>
    /// <exception cref="ArgumentException">The string is not one of the accepted forms.</exception>
    public static Device ParseDevice(string device)
    {
        var (type, index) = ParseDeviceString(device);
        return new Device(type, index);
    }

    /// <summary>The canonical spelling of a device string: lower case, no spaces (<c>cpu</c>, <c>cuda</c>, <c>cuda:1</c>).</summary>
    /// <exception cref="ArgumentException">The string is not one of the accepted forms.</exception>
    public static string NormalizeDevice(string device)
    {
        var (type, index) = ParseDeviceString(device);
        return type == DeviceType.CPU ? "cpu"
            : index < 0 ? "cuda"
            : string.Create(CultureInfo.InvariantCulture, $"cuda:{index}");
    }

    // Kept apart from TorchSharp's own parser so that bad input gets one clear message and a
    // malformed string never reaches native code.
    private static (DeviceType Type, int Index) ParseDeviceString(string device)
    {
        ArgumentNullException.ThrowIfNull(device);
        var text = device.Trim();
        if (text.Equals("cpu", StringComparison.OrdinalIgnoreCase))
        {
            return (DeviceType.CPU, -1);
        }

        if (text.Equals("cuda", StringComparison.OrdinalIgnoreCase))
        {
            return (DeviceType.CUDA, -1);
        }

        const string cudaPrefix = "cuda:";
        if (text.StartsWith(cudaPrefix, StringComparison.OrdinalIgnoreCase)
            && int.TryParse(text.AsSpan(cudaPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var index)
            && index < 1024)
        {
            return (DeviceType.CUDA, index);
        }

        throw new ArgumentException(
            $"Unknown device '{device}'. Expected 'cpu', 'cuda' or 'cuda:N' with N a device index such as 0.",
            nameof(device));
    }

    private static TorchRuntimeInfo Initialize()
    {
        var stopwatch = Stopwatch.StartNew();
        var candidates = new List<string>();
        var preparation = OperatingSystem.IsLinux()
            ? PrepareLinuxLibrary(candidates, forceCopy: false)
            : new NativePreparation(null, TorchNativePatch.NotApplicable, null);

        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);

            // Loading the library is not enough to prove the P/Invoke bindings resolve; one real op is.
            using var probe = torch.ones(2);
            using var sum = probe.sum();
            if (sum.item<float>() != 2f)
            {
                throw new InvalidOperationException("libtorch loaded but computed a wrong result for a trivial sum.");
            }
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException
            or NotSupportedException or TypeInitializationException or InvalidOperationException or ExternalException)
        {
            throw new InvalidOperationException(DescribeLoadFailure(preparation, candidates, ex), ex);
        }

        return new TorchRuntimeInfo(
            preparation.LibraryPath,
            preparation.Patch,
            preparation.LoadedFrom ?? preparation.LibraryPath,
            torch.__version__,
            stopwatch.Elapsed);
    }

    /// <summary>
    /// Finds and repairs the library. Internal so that a test harness can exercise the
    /// read-only fallback with <paramref name="forceCopy"/>; it must run before TorchSharp loads.
    /// </summary>
    [SupportedOSPlatform("linux")]
    internal static NativePreparation PrepareLinuxLibrary(List<string> candidates, bool forceCopy)
    {
        candidates.AddRange(LibraryCandidates());
        var path = candidates.FirstOrDefault(File.Exists);
        if (path is null)
        {
            // TorchSharp has fall-backs of its own (package directories, the loader's search
            // path); let it try, and report the candidates if it fails too.
            return new NativePreparation(null, TorchNativePatch.NotFound, null);
        }

        byte[] bytes;
        ElfVersionNeedPatchResult result;
        try
        {
            bytes = File.ReadAllBytes(path);
            result = ElfVersionNeedPatcher.Patch(bytes);
        }
        catch (Exception ex) when (ex is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"libtorch cannot be loaded: '{path}' could not be read as an ELF64 shared library: {ex.Message}", ex);
        }

        if (!result.Changed)
        {
            var outcome = result.AlreadyWeak.Count > 0 ? TorchNativePatch.AlreadyPatched : TorchNativePatch.NotNeeded;
            return new NativePreparation(path, outcome, null);
        }

        if (!forceCopy)
        {
            try
            {
                WriteAtomically(path, bytes, path);
                return new NativePreparation(path, TorchNativePatch.PatchedInPlace, null);
            }
            catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
            {
                // A read-only install (a package, a container layer, another user's build): fall
                // back to a patched private copy.
            }
        }

        string copy;
        bool temporary;
        try
        {
            (copy, temporary) = WritePatchedCopy(path, bytes);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException(
                $"libtorch cannot be loaded: '{path}' needs patching but is not writable, and no patched copy could be written: {ex.Message}", ex);
        }

        try
        {
            LoadPatchedCopy(path, copy, bytes);
        }
        catch (Exception ex) when (ex is DllNotFoundException or BadImageFormatException)
        {
            throw new InvalidOperationException(
                $"libtorch cannot be loaded: '{path}' is not writable, and its patched copy '{copy}' failed to load: {ex.Message}", ex);
        }
        finally
        {
            if (temporary)
            {
                // A loaded library stays mapped after its file is removed, so nothing is left in /tmp.
                TryDelete(copy);
                TryDelete(Path.GetDirectoryName(copy)!);
            }
        }

        return new NativePreparation(path, TorchNativePatch.PatchedCopy, copy);
    }

    /// <summary>
    /// The places the runtime probes for <c>LibTorchSharp</c> when TorchSharp loads it by name
    /// relative to its assembly, in the runtime's order: the host's native search directories
    /// (from the app's deps.json), then the TorchSharp assembly's directory; plus the portable
    /// (RID-less) output layout.
    /// </summary>
    private static List<string> LibraryCandidates()
    {
        var directories = new List<string>();
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string searchDirectories)
        {
            directories.AddRange(searchDirectories.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        }

        var torchDirectory = Path.GetDirectoryName(typeof(torch).Assembly.Location);
        if (!string.IsNullOrEmpty(torchDirectory))
        {
            directories.Add(torchDirectory);
        }

        directories.Add(AppContext.BaseDirectory);
        directories.Add(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native"));

        return [.. directories.Select(d => Path.GetFullPath(Path.Combine(d, LibraryFileName))).Distinct(StringComparer.Ordinal)];
    }

    /// <summary>
    /// Replaces <paramref name="path"/> by writing a sibling temporary file and renaming it over
    /// the target. Writing in place would change the pages of a library that another process
    /// (a second node agent starting at the same moment) may already have mapped; a rename
    /// leaves that process on the old inode and is atomic for everyone else.
    /// </summary>
    [SupportedOSPlatform("linux")]
    private static void WriteAtomically(string path, byte[] bytes, string attributesFrom)
    {
        var directory = Path.GetDirectoryName(path)!;
        var temporary = Path.Combine(
            directory,
            string.Create(CultureInfo.InvariantCulture, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp"));
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }

            File.SetUnixFileMode(temporary, File.GetUnixFileMode(attributesFrom));

            // Keeping the original timestamp (the size is unchanged too) lets MSBuild's incremental
            // copy treat the patched file as up to date instead of restoring the unpatched one on
            // every build.
            File.SetLastWriteTimeUtc(temporary, File.GetLastWriteTimeUtc(attributesFrom));
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    /// <summary>
    /// Writes the patched bytes to the user's cache directory, content-addressed so that
    /// TorchSharp upgrades never reuse a stale copy and concurrent processes agree on the name.
    /// Without a writable cache (a service account with no home) the copy goes to a fresh
    /// private temporary directory instead, which the caller deletes once the copy is loaded.
    /// </summary>
    [SupportedOSPlatform("linux")]
    private static (string Path, bool Temporary) WritePatchedCopy(string original, byte[] patched)
    {
        var cacheHome = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (string.IsNullOrEmpty(cacheHome))
        {
            var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            cacheHome = string.IsNullOrEmpty(home) ? null : Path.Combine(home, ".cache");
        }

        if (cacheHome is not null)
        {
            try
            {
                var hash = Convert.ToHexStringLower(SHA256.HashData(patched).AsSpan(0, 16));
                var directory = Path.Combine(cacheHome, "emc", "native", hash);
                Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                var copy = Path.Combine(directory, LibraryFileName);

                // The bytes are compared, not just the name, so a truncated or tampered entry is replaced.
                if (!File.Exists(copy) || !File.ReadAllBytes(copy).AsSpan().SequenceEqual(patched))
                {
                    WriteAtomically(copy, patched, original);
                }

                return (copy, false);
            }
            catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
            {
                // Fall through to a private temporary copy.
            }
        }

        // A shared, predictable /tmp path could be pre-created by another user; a fresh
        // directory that only this user can enter cannot.
        var temporaryDirectory = Directory.CreateTempSubdirectory("emc-native-");
        var temporaryCopy = Path.Combine(temporaryDirectory.FullName, LibraryFileName);
        WriteAtomically(temporaryCopy, patched, original);
        return (temporaryCopy, true);
    }

    /// <summary>
    /// Loads the patched copy so that TorchSharp's own loads by name find it. The copy's
    /// <c>$ORIGIN</c> run path points at the cache directory, so its libtorch dependencies are
    /// loaded first from the original directory; glibc then satisfies the copy's DT_NEEDED
    /// entries from those by soname. TorchSharp's <c>NativeLibrary.TryLoad("LibTorchSharp")</c>
    /// fails on the unpatched files it probes first, then succeeds on the bare soname, which
    /// glibc matches to the copy already loaded; the import resolver sends TorchSharp's
    /// P/Invokes straight to the copy.
    /// </summary>
    [SupportedOSPlatform("linux")]
    private static void LoadPatchedCopy(string original, string copy, byte[] patched)
    {
        var originalDirectory = Path.GetDirectoryName(original)!;
        foreach (var needed in new ElfImage(patched).ReadNeededLibraries())
        {
            var sibling = Path.Combine(originalDirectory, needed);
            if (File.Exists(sibling))
            {
                NativeLibrary.Load(sibling);
            }
        }

        _patchedCopyHandle = NativeLibrary.Load(copy);
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, ResolveLibTorchSharp);
        }
        catch (InvalidOperationException)
        {
            // Someone else owns TorchSharp's resolver; the soname match above still applies.
        }
    }

    private static IntPtr ResolveLibTorchSharp(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        libraryName == LibraryImportName ? _patchedCopyHandle : IntPtr.Zero;

    private static int CountCudaDevices()
    {
        EnsureInitialized();
        return torch.cuda.is_available() ? torch.cuda.device_count() : 0;
    }

    private static string DescribeLoadFailure(NativePreparation preparation, List<string> candidates, Exception ex)
    {
        var where = preparation.LibraryPath is null
            ? $"{LibraryFileName} was not found in any of: {string.Join(", ", candidates)}."
            : $"{LibraryFileName} at '{preparation.LibraryPath}' ({preparation.Patch}"
                + (preparation.LoadedFrom is null ? ")." : $", loaded from '{preparation.LoadedFrom}').");
        // TorchSharp reports from its type initialiser, and its own message ends in a long load trace.
        var reason = ex.GetBaseException().Message.Split('\n', 2)[0].Trim();
        return $"libtorch could not be loaded through TorchSharp {typeof(torch).Assembly.GetName().Version}: {reason} "
            + $"{where} Check that the TorchSharp native package for this platform (TorchSharp-cpu or "
            + "TorchSharp-cuda-linux) is referenced and that the loader can find its dependencies "
            + "(LD_DEBUG=libs shows the failing one).";
    }

    private static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path);
            }
            else
            {
                File.Delete(path);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Only a stray temporary file is left behind.
        }
    }

    internal sealed record NativePreparation(string? LibraryPath, TorchNativePatch Patch, string? LoadedFrom);
}

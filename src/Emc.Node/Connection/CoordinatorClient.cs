using System.Diagnostics;
using System.Net.Http.Json;

namespace Emc.Node.Connection;

/// <summary>What GET /api/v1/info returns.</summary>
public sealed record CoordinatorInfo(string CoordinatorId, string Version, string ApiUrl, string GrpcUrl, DateTimeOffset StartedAt);

/// <summary>The node's HTTP side: finding the gateway and measuring the link.</summary>
public sealed class CoordinatorClient(HttpClient http)
{
    /// <summary>Asks the coordinator where its node gateway is.</summary>
    public async Task<CoordinatorInfo> GetInfoAsync(CancellationToken cancellationToken) =>
        await http.GetFromJsonAsync<CoordinatorInfo>("api/v1/info", cancellationToken)
        ?? throw new InvalidDataException("The coordinator returned no info.");

    /// <summary>
    /// Measures round-trip time (median of several small requests) and download and upload
    /// bandwidth (a few MiB each way) to the coordinator.
    /// </summary>
    public async Task<(double RttMs, double DownloadMbps, double UploadMbps)> MeasureLinkAsync(
        int transferBytes, CancellationToken cancellationToken)
    {
        var rtts = new List<double>();
        for (var i = 0; i < 7; i++)
        {
            var started = Stopwatch.GetTimestamp();
            using var ping = await http.GetAsync("api/v1/link/ping", cancellationToken);
            ping.EnsureSuccessStatusCode();
            rtts.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }

        rtts.Sort();

        var downloadStarted = Stopwatch.GetTimestamp();
        using (var download = await http.GetAsync($"api/v1/link/download?bytes={transferBytes}", HttpCompletionOption.ResponseHeadersRead, cancellationToken))
        {
            download.EnsureSuccessStatusCode();
            await using var body = await download.Content.ReadAsStreamAsync(cancellationToken);
            await body.CopyToAsync(Stream.Null, cancellationToken);
        }

        var downloadSeconds = Stopwatch.GetElapsedTime(downloadStarted).TotalSeconds;

        var payload = new byte[transferBytes];
        Random.Shared.NextBytes(payload);
        var uploadStarted = Stopwatch.GetTimestamp();
        using (var upload = await http.PostAsync("api/v1/link/upload", new ByteArrayContent(payload), cancellationToken))
        {
            upload.EnsureSuccessStatusCode();
        }

        var uploadSeconds = Stopwatch.GetElapsedTime(uploadStarted).TotalSeconds;
        var megabits = transferBytes * 8 / 1e6;
        return (rtts[rtts.Count / 2], megabits / Math.Max(downloadSeconds, 1e-6), megabits / Math.Max(uploadSeconds, 1e-6));
    }
}

using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using Emc.Core;
using Emc.Core.Training;

namespace Emc.Client;

/// <summary>Datasets, training jobs, models and blobs.</summary>
public sealed partial class EmcApiClient
{
    /// <summary>Uploads files as one dataset; the coordinator validates, shards and stores them.</summary>
    public async Task<DatasetView> UploadDatasetAsync(string name, string format, string? labelColumn, int? classes, IReadOnlyList<string> paths, CancellationToken cancellationToken)
    {
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent(name), "name");
        form.Add(new StringContent(format), "format");
        if (!string.IsNullOrEmpty(labelColumn))
        {
            form.Add(new StringContent(labelColumn), "labelColumn");
        }

        if (classes is { } count)
        {
            form.Add(new StringContent(count.ToString(System.Globalization.CultureInfo.InvariantCulture)), "classes");
        }

        var streams = new List<Stream>();
        try
        {
            foreach (var path in paths)
            {
                var stream = File.OpenRead(path);
                streams.Add(stream);
                var content = new StreamContent(stream);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                form.Add(content, "files", Path.GetFileName(path));
            }

            return await SendContentAsync<DatasetView>(HttpMethod.Post, "api/v1/datasets", form, cancellationToken);
        }
        finally
        {
            foreach (var stream in streams)
            {
                await stream.DisposeAsync();
            }
        }
    }

    public Task<IReadOnlyList<DatasetView>> GetDatasetsAsync(CancellationToken cancellationToken) =>
        GetAsync<IReadOnlyList<DatasetView>>("api/v1/datasets", cancellationToken);

    public Task<DatasetView> GetDatasetAsync(string name, CancellationToken cancellationToken) =>
        GetAsync<DatasetView>($"api/v1/datasets/{Uri.EscapeDataString(name)}", cancellationToken);

    public async Task RemoveDatasetAsync(string name, CancellationToken cancellationToken) =>
        await SendContentAsync<object?>(HttpMethod.Delete, $"api/v1/datasets/{Uri.EscapeDataString(name)}", null, cancellationToken);

    public Task<TrainingJobView> SubmitTrainingAsync(TrainingJobSpec spec, CancellationToken cancellationToken) =>
        SendAsync<TrainingJobView>(HttpMethod.Post, "api/v1/training", spec, cancellationToken);

    public Task<IReadOnlyList<TrainingJobView>> GetTrainingJobsAsync(TrainingJobState? state, int limit, CancellationToken cancellationToken) =>
        GetAsync<IReadOnlyList<TrainingJobView>>("api/v1/training" + Query(("state", Kebab(state)), ("limit", limit.ToString(System.Globalization.CultureInfo.InvariantCulture))), cancellationToken);

    public Task<TrainingJobView> GetTrainingJobAsync(string id, CancellationToken cancellationToken) =>
        GetAsync<TrainingJobView>($"api/v1/training/{Uri.EscapeDataString(id)}", cancellationToken);

    public Task<IReadOnlyList<RoundSummary>> GetTrainingRoundsAsync(string id, long after, CancellationToken cancellationToken) =>
        GetAsync<IReadOnlyList<RoundSummary>>($"api/v1/training/{Uri.EscapeDataString(id)}/rounds" + Query(("after", after.ToString(System.Globalization.CultureInfo.InvariantCulture))), cancellationToken);

    public Task<TrainingJobView> CancelTrainingAsync(string id, CancellationToken cancellationToken) =>
        SendAsync<TrainingJobView>(HttpMethod.Post, $"api/v1/training/{Uri.EscapeDataString(id)}/cancel", null, cancellationToken);

    public Task<IReadOnlyList<ModelDescriptor>> GetModelsAsync(CancellationToken cancellationToken) =>
        GetAsync<IReadOnlyList<ModelDescriptor>>("api/v1/models", cancellationToken);

    public Task<ModelDescriptor> GetModelAsync(string name, int? version, CancellationToken cancellationToken) =>
        GetAsync<ModelDescriptor>($"api/v1/models/{Uri.EscapeDataString(name)}" + Query(("version", version?.ToString(System.Globalization.CultureInfo.InvariantCulture))), cancellationToken);

    /// <summary>
    /// Pushes an ONNX or TorchScript file as a new version of <paramref name="name"/> (the next
    /// version when <paramref name="version"/> is null). TorchScript files need their signature
    /// as NAME:DATATYPE:SHAPE in <paramref name="inputs"/> and <paramref name="outputs"/>.
    /// </summary>
    public async Task<ModelDescriptor> PushModelAsync(
        string path,
        string name,
        int? version,
        string? format,
        IReadOnlyList<string> inputs,
        IReadOnlyList<string> outputs,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outputs);
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent(name), "name");
        if (version is { } v)
        {
            form.Add(new StringContent(v.ToString(System.Globalization.CultureInfo.InvariantCulture)), "version");
        }

        if (!string.IsNullOrEmpty(format))
        {
            form.Add(new StringContent(format), "format");
        }

        foreach (var input in inputs)
        {
            form.Add(new StringContent(input), "input");
        }

        foreach (var output in outputs)
        {
            form.Add(new StringContent(output), "output");
        }

        await using var stream = File.OpenRead(path);
        var content = new StreamContent(stream);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(content, "file", Path.GetFileName(path));
        return await SendContentAsync<ModelDescriptor>(HttpMethod.Post, "api/v1/models", form, cancellationToken);
    }

    /// <summary>Removes one version of a model, or every version when <paramref name="version"/> is null; returns what was removed.</summary>
    public Task<IReadOnlyList<ModelDescriptor>> RemoveModelAsync(string name, int? version, CancellationToken cancellationToken) =>
        SendContentAsync<IReadOnlyList<ModelDescriptor>>(
            HttpMethod.Delete,
            $"api/v1/models/{Uri.EscapeDataString(name)}" + Query(("version", version?.ToString(System.Globalization.CultureInfo.InvariantCulture))),
            null,
            cancellationToken);

    /// <summary>Downloads a trained model exported to <paramref name="format"/> (onnx) into <paramref name="destination"/>; returns the export's sha256.</summary>
    public async Task<string> ExportModelAsync(string name, int? version, string format, Stream destination, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var path = $"api/v1/models/{Uri.EscapeDataString(name)}/export" + Query(("version", version?.ToString(System.Globalization.CultureInfo.InvariantCulture)), ("format", format));
        HttpResponseMessage response;
        try
        {
            response = await http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new EmcApiException(null, $"cannot reach the coordinator at {http.BaseAddress}: {ex.Message}");
        }

        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                throw Failure(response, await ReadProblemAsync(response, cancellationToken));
            }

            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[1 << 16];
            int read;
            while ((read = await body.ReadAsync(buffer, cancellationToken)) > 0)
            {
                sha.AppendData(buffer, 0, read);
                await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }

            var hash = Convert.ToHexStringLower(sha.GetHashAndReset());
            var expected = response.Headers.ETag?.Tag.Trim('"');
            return expected is null || expected == hash
                ? hash
                : throw new EmcApiException(response.StatusCode, $"the export arrived corrupted (sha256 {hash}, expected {expected})");
        }
    }

    /// <summary>Uploads a file as a content-addressed blob and returns its sha256.</summary>
    public async Task<string> UploadBlobAsync(string path, CancellationToken cancellationToken)
    {
        string hash;
        await using (var read = File.OpenRead(path))
        {
            hash = Convert.ToHexStringLower(await SHA256.HashDataAsync(read, cancellationToken));
        }

        await using var stream = File.OpenRead(path);
        using var content = new StreamContent(stream);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        await SendContentAsync<object?>(HttpMethod.Put, $"api/v1/blobs/{hash}", content, cancellationToken);
        return hash;
    }

    /// <summary>Downloads a blob, checking its sha256.</summary>
    public async Task<byte[]> GetBlobAsync(string hash, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await http.GetAsync($"api/v1/blobs/{hash}", cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new EmcApiException(null, $"cannot reach the coordinator at {http.BaseAddress}: {ex.Message}");
        }

        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                throw Failure(response, await ReadProblemAsync(response, cancellationToken));
            }

            var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
            return Convert.ToHexStringLower(SHA256.HashData(bytes)) == hash
                ? bytes
                : throw new EmcApiException(response.StatusCode, $"blob {hash} arrived corrupted");
        }
    }

    private async Task<T> SendContentAsync<T>(HttpMethod method, string path, HttpContent? content, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            using var request = new HttpRequestMessage(method, path) { Content = content };
            response = await http.SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new EmcApiException(null, $"cannot reach the coordinator at {http.BaseAddress}: {ex.Message}");
        }

        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                throw Failure(response, await ReadProblemAsync(response, cancellationToken));
            }

            if (response.StatusCode == HttpStatusCode.NoContent || typeof(T) == typeof(object))
            {
                return default!;
            }

            return await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<T>(response.Content, EmcJson.Options, cancellationToken)
                ?? throw new EmcApiException(response.StatusCode, "the coordinator returned an empty body");
        }
    }
}

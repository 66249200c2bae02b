using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Emc.Core;
using Emc.Core.Registry;

namespace Emc.Client;

/// <summary>An error the EMC API answered with (a ProblemDetails document), or an unreachable coordinator.</summary>
public sealed class EmcApiException(HttpStatusCode? status, string message) : Exception(message)
{
    /// <summary>The HTTP status, or null when the coordinator could not be reached.</summary>
    public HttpStatusCode? Status { get; } = status;
}

/// <summary>The typed client of the coordinator's REST API (/api/v1), used by the CLI and the tests.</summary>
public sealed class EmcApiClient(HttpClient http)
{
    /// <summary>Makes a client for the coordinator at <paramref name="coordinator"/>.</summary>
    public static EmcApiClient Create(Uri coordinator, TimeSpan? timeout = null) =>
        new(new HttpClient { BaseAddress = coordinator, Timeout = timeout ?? TimeSpan.FromSeconds(30) });

    /// <summary>The registry's nodes, optionally only those in one status.</summary>
    public Task<IReadOnlyList<NodeView>> GetNodesAsync(NodeStatus? status, CancellationToken cancellationToken) =>
        GetAsync<IReadOnlyList<NodeView>>(
            status is null ? "api/v1/nodes" : $"api/v1/nodes?status={JsonNamingPolicy.KebabCaseLower.ConvertName(status.Value.ToString())}",
            cancellationToken);

    /// <summary>One node by id.</summary>
    public Task<NodeView> GetNodeAsync(string id, CancellationToken cancellationToken) =>
        GetAsync<NodeView>($"api/v1/nodes/{Uri.EscapeDataString(id)}", cancellationToken);

    /// <summary>True when /readyz answers 200.</summary>
    public async Task<bool> IsReadyAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var response = await http.GetAsync("readyz", cancellationToken);
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    private async Task<T> GetAsync<T>(string path, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await http.GetAsync(path, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new EmcApiException(null, $"cannot reach the coordinator at {http.BaseAddress}: {ex.Message}");
        }

        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                var detail = await ReadProblemAsync(response, cancellationToken);
                throw new EmcApiException(response.StatusCode, $"{(int)response.StatusCode} {response.ReasonPhrase}: {detail}");
            }

            return await response.Content.ReadFromJsonAsync<T>(EmcJson.Options, cancellationToken)
                ?? throw new EmcApiException(response.StatusCode, "the coordinator returned an empty body");
        }
    }

    private static async Task<string> ReadProblemAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        try
        {
            using var document = JsonDocument.Parse(text);
            if (document.RootElement.TryGetProperty("detail", out var detail) && detail.ValueKind == JsonValueKind.String)
            {
                return detail.GetString()!;
            }
        }
        catch (JsonException)
        {
            // Not a problem document: show the text itself.
        }

        return text.Length > 200 ? text[..200] : text;
    }
}

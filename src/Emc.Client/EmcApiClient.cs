using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Emc.Core;
using Emc.Core.Registry;
using Emc.Core.Scheduling;

namespace Emc.Client;

/// <summary>An error the EMC API answered with (a ProblemDetails document), or an unreachable coordinator.</summary>
public sealed class EmcApiException(HttpStatusCode? status, string message) : Exception(message)
{
    /// <summary>The HTTP status, or null when the coordinator could not be reached.</summary>
    public HttpStatusCode? Status { get; } = status;
}

/// <summary>
/// The typed client of the coordinator's REST API (/api/v1), used by the CLI and the tests. Every request
/// carries the API key given (<c>Authorization: Bearer KEY</c>).
/// </summary>
public sealed partial class EmcApiClient(HttpClient http)
{
    /// <summary>Makes a client for the coordinator at <paramref name="coordinator"/> that sends <paramref name="apiKey"/>.</summary>
    public static EmcApiClient Create(Uri coordinator, TimeSpan? timeout = null, string? apiKey = null)
    {
        var client = new HttpClient { BaseAddress = coordinator, Timeout = timeout ?? TimeSpan.FromSeconds(30) };
        if (!string.IsNullOrEmpty(apiKey))
        {
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", apiKey);
        }

        return new EmcApiClient(client);
    }

    /// <summary>Said after the coordinator's message when it answers 401 (the CLI says where keys come from).</summary>
    public string? UnauthorizedHint { get; set; }

    /// <summary>The registry's nodes, optionally only those in one status.</summary>
    public Task<IReadOnlyList<NodeView>> GetNodesAsync(NodeStatus? status, CancellationToken cancellationToken) =>
        GetAsync<IReadOnlyList<NodeView>>(
            status is null ? "api/v1/nodes" : $"api/v1/nodes?status={EmcJson.EnumText(status.Value)}",
            cancellationToken);

    /// <summary>One node by id.</summary>
    public Task<NodeView> GetNodeAsync(string id, CancellationToken cancellationToken) =>
        GetAsync<NodeView>($"api/v1/nodes/{Uri.EscapeDataString(id)}", cancellationToken);

    /// <summary>Submits a job; returns it with its id.</summary>
    public Task<JobView> SubmitJobAsync(JobSpec job, CancellationToken cancellationToken) =>
        SendAsync<JobView>(HttpMethod.Post, "api/v1/jobs", job, cancellationToken);

    /// <summary>Jobs in submission order.</summary>
    public Task<IReadOnlyList<JobView>> GetJobsAsync(JobState? state, string? account, int limit, CancellationToken cancellationToken) =>
        GetAsync<IReadOnlyList<JobView>>("api/v1/jobs" + Query(("state", Kebab(state)), ("account", account), ("limit", limit.ToString(System.Globalization.CultureInfo.InvariantCulture))), cancellationToken);

    public Task<JobView> GetJobAsync(string id, CancellationToken cancellationToken) =>
        GetAsync<JobView>($"api/v1/jobs/{Uri.EscapeDataString(id)}", cancellationToken);

    /// <summary>Cancels a job; returns its new state.</summary>
    public Task<JobView> CancelJobAsync(string id, CancellationToken cancellationToken) =>
        SendAsync<JobView>(HttpMethod.Post, $"api/v1/jobs/{Uri.EscapeDataString(id)}/cancel", null, cancellationToken);

    /// <summary>Tasks in id order, optionally of one job and in one state, after a task id (paging).</summary>
    public Task<IReadOnlyList<TaskView>> GetTasksAsync(string? job, TaskState? state, string? after, int limit, CancellationToken cancellationToken) =>
        GetAsync<IReadOnlyList<TaskView>>("api/v1/tasks" + Query(("job", job), ("state", Kebab(state)), ("after", after), ("limit", limit.ToString(System.Globalization.CultureInfo.InvariantCulture))), cancellationToken);

    public Task<TaskView> GetTaskAsync(string id, CancellationToken cancellationToken) =>
        GetAsync<TaskView>($"api/v1/tasks/{Uri.EscapeDataString(id)}", cancellationToken);

    /// <summary>Sets an account's fair-share weight.</summary>
    public Task<AccountWeightView> SetAccountWeightAsync(string account, double weight, CancellationToken cancellationToken) =>
        SendAsync<AccountWeightView>(HttpMethod.Put, $"api/v1/accounts/{Uri.EscapeDataString(account)}/weight", new AccountWeightView(account, weight), cancellationToken);

    public Task<SchedulerStats> GetSchedulerStatsAsync(CancellationToken cancellationToken) =>
        GetAsync<SchedulerStats>("api/v1/scheduler", cancellationToken);

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

    private Task<T> GetAsync<T>(string path, CancellationToken cancellationToken) =>
        SendAsync<T>(HttpMethod.Get, path, null, cancellationToken);

    private static string? Kebab<TEnum>(TEnum? value)
        where TEnum : struct, Enum =>
        value is null ? null : EmcJson.EnumText(value.Value);

    private static string Query(params (string Name, string? Value)[] parameters)
    {
        var parts = parameters.Where(p => p.Value is not null).Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value!)}").ToList();
        return parts.Count == 0 ? "" : "?" + string.Join("&", parts);
    }

    private async Task<T> SendAsync<T>(HttpMethod method, string path, object? body, CancellationToken cancellationToken, string? idempotencyKey = null)
    {
        HttpResponseMessage response;
        try
        {
            using var request = new HttpRequestMessage(method, path);
            if (body is not null)
            {
                request.Content = JsonContent.Create(body, body.GetType(), options: EmcJson.Options);
            }

            if (idempotencyKey is not null)
            {
                request.Headers.Add("Idempotency-Key", idempotencyKey);
            }

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
                var detail = await ReadProblemAsync(response, cancellationToken);
                throw Failure(response, detail);
            }

            return await response.Content.ReadFromJsonAsync<T>(EmcJson.Options, cancellationToken)
                ?? throw new EmcApiException(response.StatusCode, "the coordinator returned an empty body");
        }
    }

    private EmcApiException Failure(HttpResponseMessage response, string detail)
    {
        var message = $"{(int)response.StatusCode} {response.ReasonPhrase}: {detail}";
        return new EmcApiException(
            response.StatusCode,
            response.StatusCode == HttpStatusCode.Unauthorized && !string.IsNullOrEmpty(UnauthorizedHint) ? $"{message}. {UnauthorizedHint}" : message);
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

/// <summary>An account's fair-share weight.</summary>
public sealed record AccountWeightView(string Account, double Weight);

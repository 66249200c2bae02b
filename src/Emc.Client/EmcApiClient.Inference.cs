using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Emc.Core.Inference;

namespace Emc.Client;

/// <summary>Deployments and inference.</summary>
public sealed partial class EmcApiClient
{
    /// <summary>Deploys a registered model; returns the deployment with its id.</summary>
    public Task<DeploymentView> DeployAsync(DeploymentSpec spec, CancellationToken cancellationToken) =>
        SendAsync<DeploymentView>(HttpMethod.Post, "api/v1/deployments", spec, cancellationToken);

    /// <summary>Adds <paramref name="amount"/> ledger units to a paid deployment's budget, from the account that reserved it; returns the deployment.</summary>
    public Task<DeploymentView> TopUpDeploymentAsync(string id, long amount, string idempotencyKey, CancellationToken cancellationToken) =>
        SendAsync<DeploymentView>(HttpMethod.Post, $"api/v1/deployments/{Uri.EscapeDataString(id)}/budget", new Core.Accounts.AmountRequest(amount), cancellationToken, idempotencyKey);

    /// <summary>Stops a deployment, by id or by model name; returns the id stopped.</summary>
    public async Task<string> UndeployAsync(string idOrName, CancellationToken cancellationToken) =>
        (await SendAsync<UndeployedView>(HttpMethod.Delete, $"api/v1/deployments/{Uri.EscapeDataString(idOrName)}", null, cancellationToken)).Id;

    /// <summary>Every deployment.</summary>
    public Task<IReadOnlyList<DeploymentView>> GetDeploymentsAsync(CancellationToken cancellationToken) =>
        GetAsync<IReadOnlyList<DeploymentView>>("api/v1/deployments", cancellationToken);

    /// <summary>One deployment by id.</summary>
    public Task<DeploymentView> GetDeploymentAsync(string id, CancellationToken cancellationToken) =>
        GetAsync<DeploymentView>($"api/v1/deployments/{Uri.EscapeDataString(id)}", cancellationToken);

    /// <summary>
    /// Posts an Open Inference Protocol JSON request body to <c>/v2/models/{model}[/versions/{version}]/infer</c>
    /// and returns the response body as it came; an error answer is thrown with the server's message.
    /// </summary>
    public async Task<string> InferJsonAsync(string model, string? version, string body, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        var path = $"v2/models/{Uri.EscapeDataString(model)}" + (string.IsNullOrEmpty(version) ? "" : $"/versions/{Uri.EscapeDataString(version)}") + "/infer";
        HttpResponseMessage response;
        try
        {
            using var content = new StringContent(body, Encoding.UTF8);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            response = await http.PostAsync(path, content, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new EmcApiException(null, $"cannot reach the coordinator at {http.BaseAddress}: {ex.Message}");
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            if (response.IsSuccessStatusCode)
            {
                return text;
            }

            // The protocol's errors are {"error": message}; other failures may be problem documents.
            var message = text.Length > 200 ? text[..200] : text;
            try
            {
                using var document = JsonDocument.Parse(text);
                if (document.RootElement.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.String)
                {
                    message = error.GetString()!;
                }
                else if (document.RootElement.TryGetProperty("detail", out var detail) && detail.ValueKind == JsonValueKind.String)
                {
                    message = detail.GetString()!;
                }
            }
            catch (JsonException)
            {
                // Not JSON: the text is the message.
            }

            throw Failure(response, message);
        }
    }

    private sealed record UndeployedView(string Id);
}

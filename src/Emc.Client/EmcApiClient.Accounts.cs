using System.Security.Cryptography;
using Emc.Core.Accounts;

namespace Emc.Client;

/// <summary>Accounts and API keys. "me" names the account of the key the client sends.</summary>
public sealed partial class EmcApiClient
{
    /// <summary>What "me" stands for in account routes: the caller's own account.</summary>
    public const string Me = "me";

    /// <summary>Makes a user account (operator only); its first key is in the answer, the only time it is shown.</summary>
    public Task<CreatedAccount> CreateAccountAsync(string name, CancellationToken cancellationToken) =>
        SendAsync<CreatedAccount>(HttpMethod.Post, "api/v1/accounts", new AccountRequest(name), cancellationToken);

    /// <summary>An account: <see cref="Me"/>, or any account for the operator.</summary>
    public Task<AccountView> GetAccountAsync(string account, CancellationToken cancellationToken) =>
        GetAsync<AccountView>($"api/v1/accounts/{Uri.EscapeDataString(account)}", cancellationToken);

    /// <summary>The keys of an account, newest first (never the keys themselves).</summary>
    public Task<IReadOnlyList<ApiKeyView>> GetKeysAsync(string account, CancellationToken cancellationToken) =>
        GetAsync<IReadOnlyList<ApiKeyView>>($"api/v1/accounts/{Uri.EscapeDataString(account)}/keys", cancellationToken);

    /// <summary>Makes a key for an account; the answer holds the key, the only time it is shown.</summary>
    public Task<CreatedApiKey> CreateKeyAsync(string account, string? name, CancellationToken cancellationToken) =>
        SendAsync<CreatedApiKey>(HttpMethod.Post, $"api/v1/accounts/{Uri.EscapeDataString(account)}/keys", new ApiKeyRequest(name), cancellationToken);

    /// <summary>Revokes a key by its id; from then on it opens no request.</summary>
    public Task<ApiKeyView> RevokeKeyAsync(string account, string id, CancellationToken cancellationToken) =>
        SendAsync<ApiKeyView>(HttpMethod.Delete, $"api/v1/accounts/{Uri.EscapeDataString(account)}/keys/{Uri.EscapeDataString(id)}", null, cancellationToken);

    /// <summary>Downloads one file of a model (its pushed file, weights or TorchScript module), checking its sha256.</summary>
    public async Task<byte[]> GetModelFileAsync(string name, int? version, string hash, CancellationToken cancellationToken)
    {
        var path = $"api/v1/models/{Uri.EscapeDataString(name)}/files/{Uri.EscapeDataString(hash)}"
            + Query(("version", version?.ToString(System.Globalization.CultureInfo.InvariantCulture)));
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
                throw Failure(response, await ReadProblemAsync(response, cancellationToken));
            }

            var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
            return Convert.ToHexStringLower(SHA256.HashData(bytes)) == hash
                ? bytes
                : throw new EmcApiException(response.StatusCode, $"file {hash} of model '{name}' arrived corrupted");
        }
    }
}

using System.Net;
using System.Security.Cryptography;
using System.Text;
using Emc.Client;
using Emc.Coordinator.Accounts;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Core.Scheduling;
using Microsoft.Data.Sqlite;

namespace Emc.Coordinator.Tests.Accounts;

/// <summary>Accounts and API keys: made by the operator, shown once, stored hashed, revoked at once.</summary>
public sealed class ApiKeyTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task CreateKey_ShownOnceAndStoredOnlyAsItsSha256()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var alice = await coordinator.CreateUserAsync("alice");
        var created = await alice.Api.CreateKeyAsync("me", "laptop", None);
        Assert.True(ApiKeys.TryParse(created.Key, out var id));
        Assert.Equal(created.Id, id);
        Assert.Equal(("alice", "laptop"), (created.Account, created.Name));

        var listed = await alice.Api.GetKeysAsync("me", None);
        Assert.Equal(new[] { alice.KeyId, created.Id }.Order(StringComparer.Ordinal), listed.Select(k => k.Id).Order(StringComparer.Ordinal));
        Assert.All(listed, k => Assert.Null(k.RevokedAt));

        // The database has the hash, and nowhere the key or its secret part.
        var rows = await ReadAllAsync(coordinator);
        Assert.Contains(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(created.Key))), rows, StringComparison.Ordinal);
        Assert.DoesNotContain(created.Key[(4 + ApiKeys.IdLength + 1)..], rows, StringComparison.Ordinal);
        Assert.DoesNotContain(alice.Key[(4 + ApiKeys.IdLength + 1)..], rows, StringComparison.Ordinal);

        // The new key works, and its use is recorded.
        var laptop = EmcApiClient.Create(coordinator.Host.Endpoints.ApiUrl, apiKey: created.Key);
        Assert.Equal("alice", (await laptop.GetAccountAsync("me", None)).Id);
        Assert.NotNull((await alice.Api.GetKeysAsync("me", None)).Single(k => k.Id == created.Id).LastUsedAt);
    }

    [Fact]
    public async Task Revoke_KeyRefusedAtOnce_OthersKeysOnlyByTheOperator()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var alice = await coordinator.CreateUserAsync("alice");
        var bob = await coordinator.CreateUserAsync("bob");
        var spare = await alice.Api.CreateKeyAsync("me", null, None);
        var spareClient = EmcApiClient.Create(coordinator.Host.Endpoints.ApiUrl, apiKey: spare.Key);
        Assert.Equal("alice", (await spareClient.GetAccountAsync("me", None)).Id);

        // Bob cannot revoke alice's key; alice can, and from that moment it opens nothing (the key was just
        // checked, so it is in memory: the revocation must reach there too).
        await RefusedAsync(HttpStatusCode.Forbidden, () => bob.Api.RevokeKeyAsync("alice", spare.Id, None));
        var revoked = await alice.Api.RevokeKeyAsync("me", spare.Id, None);
        Assert.NotNull(revoked.RevokedAt);
        var refused = await RefusedAsync(HttpStatusCode.Unauthorized, () => spareClient.GetAccountAsync("me", None));
        Assert.Contains("revoked", refused.Message, StringComparison.Ordinal);
        Assert.Equal(revoked.RevokedAt, (await alice.Api.RevokeKeyAsync("me", spare.Id, None)).RevokedAt);

        // The operator lists and revokes any account's keys; bad ids are told apart from unknown ones.
        Assert.Contains(await coordinator.Api.GetKeysAsync("bob", None), k => k.Id == bob.KeyId);
        await coordinator.Api.RevokeKeyAsync("bob", bob.KeyId, None);
        await RefusedAsync(HttpStatusCode.Unauthorized, () => bob.Api.GetAccountAsync("me", None));
        await RefusedAsync(HttpStatusCode.NotFound, () => coordinator.Api.RevokeKeyAsync("alice", "0123456789ab", None));
        await RefusedAsync(HttpStatusCode.BadRequest, () => coordinator.Api.RevokeKeyAsync("alice", "nope", None));
        await RefusedAsync(HttpStatusCode.NotFound, () => coordinator.Api.GetKeysAsync("nobody", None));
        Assert.Equal("alice", (await alice.Api.GetAccountAsync("me", None)).Id);
    }

    [Fact]
    public async Task CreateAccount_OperatorOnly_NamesChecked()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var alice = await coordinator.CreateUserAsync("alice");
        Assert.Equal(("alice", "user"), ((await alice.Api.GetAccountAsync("me", None)).Id, (await alice.Api.GetAccountAsync("alice", None)).Role));
        Assert.Equal("operator", (await coordinator.Api.GetAccountAsync("me", None)).Role);
        Assert.Equal("alice", (await coordinator.Api.GetAccountAsync("alice", None)).Id);

        await RefusedAsync(HttpStatusCode.Forbidden, () => alice.Api.CreateAccountAsync("mallory", None));
        await RefusedAsync(HttpStatusCode.Forbidden, () => alice.Api.GetAccountAsync("operator", None));
        await RefusedAsync(HttpStatusCode.Conflict, () => coordinator.Api.CreateAccountAsync("alice", None));
        foreach (var reserved in new[] { "me", "operator", "deployments", "default" })
        {
            await RefusedAsync(HttpStatusCode.Conflict, () => coordinator.Api.CreateAccountAsync(reserved, None));
        }

        foreach (var bad in new[] { "", "Alice", "a b", "-a", new string('a', 65) })
        {
            await RefusedAsync(HttpStatusCode.BadRequest, () => coordinator.Api.CreateAccountAsync(bad, None));
        }

        // A name that jobs already carry as their account would adopt them: refused.
        await coordinator.Api.SubmitJobAsync(new JobSpec { Account = "carol", Tasks = [new TaskSpec { Kind = "sleep", Input = "{}" }] }, None);
        await RefusedAsync(HttpStatusCode.Conflict, () => coordinator.Api.CreateAccountAsync("carol", None));
        await RefusedAsync(HttpStatusCode.NotFound, () => coordinator.Api.GetAccountAsync("carol", None));
    }

    private static async Task<EmcApiException> RefusedAsync(HttpStatusCode status, Func<Task> call)
    {
        var error = await Assert.ThrowsAsync<EmcApiException>(call);
        Assert.True(error.Status == status, $"expected {(int)status}: {error.Message}");
        return error;
    }

    private static async Task<string> ReadAllAsync(TestCoordinator coordinator)
    {
        var text = new StringBuilder();
        await using var connection = new SqliteConnection($"Data Source={Path.Combine(coordinator.DataDirectory, "emc.db")};Mode=ReadOnly;Pooling=False");
        await connection.OpenAsync();
        foreach (var table in new[] { "accounts", "api_keys", "settings" })
        {
            await using var command = connection.CreateCommand();
            command.CommandText = $"SELECT * FROM {table}";
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                for (var i = 0; i < reader.FieldCount; i++)
                {
                    text.Append(reader.GetValue(i)).Append('|');
                }
            }
        }

        return text.ToString();
    }
}

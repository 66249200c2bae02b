using System.Text.Json;
using Emc.Core;
using Emc.Core.Accounts;
using Emc.IntegrationTests.Infrastructure;

namespace Emc.IntegrationTests;

/// <summary>`emc account` against a real coordinator process: accounts, keys shown once, revocation, bad input.</summary>
public sealed class AccountTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Account_CreateShowKeysRevoke_TheUsersKeysWorkUntilRevoked()
    {
        await using var network = await EmcNetwork.StartAsync(0);
        var api = network.ApiUrl.ToString();

        var (exit, output) = await EmcProcess.RunAsync(Timeout, "account", "create", "alice", "--json", "--coordinator", api);
        Assert.True(exit == 0, output);
        var created = JsonSerializer.Deserialize<CreatedAccount>(output, EmcJson.Options)!;
        Assert.Equal("alice", created.Account.Id);
        Assert.Equal("user", created.Account.Role);
        Assert.StartsWith("emc_" + created.Key.Id + "_", created.Key.Key, StringComparison.Ordinal);

        (exit, output) = await EmcProcess.RunAsync(Timeout, "account", "show", "--coordinator", api, "--api-key", created.Key.Key);
        Assert.True(exit == 0, output);
        Assert.Contains("alice (user)", output, StringComparison.Ordinal);

        (exit, output) = await EmcProcess.RunAsync(Timeout, "account", "keys", "create", "--name", "laptop", "--json", "--coordinator", api, "--api-key", created.Key.Key);
        Assert.True(exit == 0, output);
        var second = JsonSerializer.Deserialize<CreatedApiKey>(output, EmcJson.Options)!;
        Assert.Equal("laptop", second.Name);

        (exit, output) = await EmcProcess.RunAsync(Timeout, "account", "keys", "--json", "--coordinator", api, "--api-key", second.Key);
        Assert.True(exit == 0, output);
        var keys = JsonSerializer.Deserialize<List<ApiKeyView>>(output, EmcJson.Options)!;
        Assert.Equal(new[] { created.Key.Id, second.Id }.Order(StringComparer.Ordinal), keys.Select(k => k.Id).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(created.Key.Key, output, StringComparison.Ordinal);

        (exit, output) = await EmcProcess.RunAsync(Timeout, "account", "keys", "revoke", second.Id, "--coordinator", api, "--api-key", created.Key.Key);
        Assert.True(exit == 0, output);
        Assert.Contains("revoked", output, StringComparison.Ordinal);

        (exit, output) = await EmcProcess.RunAsync(Timeout, "account", "show", "--coordinator", api, "--api-key", second.Key);
        Assert.Equal(1, exit);
        Assert.Contains("401", output, StringComparison.Ordinal);
        Assert.Contains("revoked", output, StringComparison.Ordinal);

        // A user makes no accounts, and sees no one else's keys.
        (exit, output) = await EmcProcess.RunAsync(Timeout, "account", "create", "mallory", "--coordinator", api, "--api-key", created.Key.Key);
        Assert.Equal(1, exit);
        Assert.Contains("403", output, StringComparison.Ordinal);
        (exit, output) = await EmcProcess.RunAsync(Timeout, "account", "keys", "--account", "operator", "--coordinator", api, "--api-key", created.Key.Key);
        Assert.Equal(1, exit);
        Assert.Contains("403", output, StringComparison.Ordinal);

        // The operator lists alice's keys.
        (exit, output) = await EmcProcess.RunAsync(Timeout, "account", "keys", "--account", "alice", "--coordinator", api);
        Assert.True(exit == 0, output);
        Assert.Contains(second.Id, output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Bad Name", "is not an account name")]
    [InlineData("-x", "is not an account name")]
    public async Task AccountCreate_BadName_ExitCode2(string name, string message)
    {
        var (exit, output) = await EmcProcess.RunAsync(Timeout, "account", "create", name, "--coordinator", "http://127.0.0.1:9");
        Assert.Equal(2, exit);
        Assert.Contains(message, output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("revoke needs the key's id", "revoke")]
    [InlineData("is not a key id", "revoke", "nothex")]
    [InlineData("is not list, create or revoke", "frobnicate")]
    [InlineData("takes no key id", "list", "0123456789ab")]
    [InlineData("--name is only for create", "list", "--name", "x")]
    public async Task AccountKeys_BadInput_ExitCode2(string message, params string[] arguments)
    {
        var (exit, output) = await EmcProcess.RunAsync(Timeout, ["account", "keys", .. arguments, "--coordinator", "http://127.0.0.1:9"]);
        Assert.Equal(2, exit);
        Assert.Contains(message, output, StringComparison.Ordinal);
    }
}

using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Emc.Cli.Infrastructure;
using Emc.Client;
using Emc.Coordinator.Accounts;
using Emc.Core;
using Emc.Core.Accounts;

namespace Emc.Cli.Commands;

/// <summary>`emc account create|show|keys`: accounts and their API keys.</summary>
internal static class AccountCommand
{
    private static readonly string[] KeyHeader = ["ID", "NAME", "CREATED", "LAST USED", "REVOKED"];

    public static Command Create() => new("account", "Accounts, API keys and balances: create a user (operator), show yours, list, create and revoke keys, fund (operator) and show balances.")
    {
        CreateAccount(),
        Show(),
        Keys(),
        LedgerCommands.Fund(),
        LedgerCommands.Balance(),
    };

    private static Command CreateAccount()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var name = new Argument<string>("name") { Description = $"The account's name, also its id: {AccountIds.Rule}." };
        var command = new Command("create", "Create a user account and its first API key (the operator's key only). The key is shown once.") { coordinator, json, name };
        command.SetAction(async (result, cancellationToken) =>
        {
            var text = result.GetValue(name)!;
            if (!AccountIds.IsValid(text))
            {
                await Console.Error.WriteLineAsync($"emc account create: '{text}' is not an account name: {AccountIds.Rule}.");
                return 2;
            }

            return await ApiCalls.CallAsync("account create", async () =>
            {
                var created = await ApiKeyLookup.Client(result, coordinator).CreateAccountAsync(text, cancellationToken);
                Console.WriteLine(result.GetValue(json)
                    ? JsonSerializer.Serialize(created, EmcJson.Indented)
                    : $"Account {created.Account.Id} created. Its API key (shown only now; keep it secret):\n{created.Key.Key}\nGive it to {created.Account.Id}, who passes it as --api-key or EMC_API_KEY.");
            });
        });
        return command;
    }

    private static Command Show()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var command = new Command("show", "Show the account of the API key in use.") { coordinator, json };
        command.SetAction(async (result, cancellationToken) => await ApiCalls.CallAsync("account show", async () =>
        {
            var account = await ApiKeyLookup.Client(result, coordinator).GetAccountAsync(EmcApiClient.Me, cancellationToken);
            Console.WriteLine(result.GetValue(json)
                ? JsonSerializer.Serialize(account, EmcJson.Indented)
                : string.Create(CultureInfo.InvariantCulture, $"{account.Id} ({account.Role}), created {account.CreatedAt:yyyy-MM-dd HH:mm:ss}Z"));
        }));
        return command;
    }

    private static Command Keys()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var action = new Argument<string>("action") { Description = "list (default), create or revoke.", Arity = ArgumentArity.ZeroOrOne, DefaultValueFactory = _ => "list" };
        var id = new Argument<string?>("id") { Description = "revoke: the key's id (the 12 hex digits after emc_).", Arity = ArgumentArity.ZeroOrOne };
        var name = new Option<string?>("--name") { Description = "create: a label for the key, such as laptop." };
        var account = new Option<string>("--account") { Description = "The account (default: the key's own; the operator may name any).", DefaultValueFactory = _ => EmcApiClient.Me };
        var command = new Command("keys", "List, create (shown once) or revoke API keys: emc account keys [list|create|revoke ID].") { coordinator, json, action, id, name, account };
        command.SetAction(async (result, cancellationToken) =>
        {
            var verb = result.GetValue(action)!;
            var keyId = result.GetValue(id);
            var owner = result.GetValue(account)!;
            var problem = verb switch
            {
                _ when owner != EmcApiClient.Me && !AccountIds.IsValid(owner) => $"'{owner}' is not an account name: {AccountIds.Rule}",
                "list" or "create" when keyId is not null => $"{verb} takes no key id",
                "revoke" when keyId is null => "revoke needs the key's id: emc account keys revoke ID",
                "revoke" when !ApiKeys.IsId(keyId) => $"'{keyId}' is not a key id: {ApiKeys.IdLength} lowercase hex digits (the part after emc_)",
                "list" or "create" or "revoke" => null,
                _ => $"'{verb}' is not list, create or revoke",
            };
            if (problem is null && verb != "create" && result.GetValue(name) is not null)
            {
                problem = "--name is only for create";
            }

            if (problem is not null)
            {
                await Console.Error.WriteLineAsync($"emc account keys: {problem}.");
                return 2;
            }

            return await ApiCalls.CallAsync("account keys", async () =>
            {
                var client = ApiKeyLookup.Client(result, coordinator);
                var asJson = result.GetValue(json);
                switch (verb)
                {
                    case "create":
                        var created = await client.CreateKeyAsync(owner, result.GetValue(name), cancellationToken);
                        Console.WriteLine(asJson
                            ? JsonSerializer.Serialize(created, EmcJson.Indented)
                            : $"Key {created.Id} for {created.Account} (shown only now; keep it secret):\n{created.Key}");
                        break;
                    case "revoke":
                        var revoked = await client.RevokeKeyAsync(owner, keyId!, cancellationToken);
                        Console.WriteLine(asJson
                            ? JsonSerializer.Serialize(revoked, EmcJson.Indented)
                            : string.Create(CultureInfo.InvariantCulture, $"Key {revoked.Id} of {revoked.Account} is revoked (since {revoked.RevokedAt:yyyy-MM-dd HH:mm:ss}Z)."));
                        break;
                    default:
                        var keys = await client.GetKeysAsync(owner, cancellationToken);
                        Console.WriteLine(asJson ? JsonSerializer.Serialize(keys, EmcJson.Indented) : FormatKeys(keys));
                        break;
                }
            });
        });
        return command;
    }

    internal static string FormatKeys(IReadOnlyList<ApiKeyView> keys)
    {
        var rows = new List<string[]> { KeyHeader };
        rows.AddRange(keys.Select(k => new[]
        {
            k.Id,
            k.Name.Length == 0 ? "-" : k.Name,
            Time(k.CreatedAt),
            k.LastUsedAt is { } used ? Time(used) : "-",
            k.RevokedAt is { } revoked ? Time(revoked) : "-",
        }));
        return Table.Format(rows);
    }

    private static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture);
}

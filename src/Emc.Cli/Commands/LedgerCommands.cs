using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Emc.Cli.Infrastructure;
using Emc.Client;
using Emc.Core;
using Emc.Core.Accounts;
using Emc.Core.Identity;
using Emc.Node.Connection;

namespace Emc.Cli.Commands;

/// <summary>
/// The ledger from the command line: `emc account fund|balance`, `emc ledger`, `emc stake`, `emc unstake`,
/// `emc settle` and `emc claim-proof`. Amounts are in EMC with up to 6 decimals (1 EMC = 1,000,000 units).
/// Every write sends a fresh idempotency key (or `--idempotency-key K` to retry one safely).
/// </summary>
internal static class LedgerCommands
{
    private const long UnitsPerEmc = 1_000_000;

    public static Command Fund()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var account = new Argument<string>("account") { Description = "The account to credit." };
        var amount = new Argument<string>("amount") { Description = "EMC to credit, such as 25 or 0.5." };
        var key = IdempotencyKey();
        var command = new Command("fund", "Credit an account (the operator's key only): the stand-in for a token on-ramp.") { coordinator, json, account, amount, key };
        command.SetAction(async (result, cancellationToken) =>
        {
            if (!TryParseAmount(result.GetValue(amount)!, out var units, out var error))
            {
                await Console.Error.WriteLineAsync($"emc account fund: {error}");
                return 2;
            }

            return await ApiCalls.CallAsync("account fund", async () =>
            {
                var balance = await ApiKeyLookup.Client(result, coordinator).FundAsync(result.GetValue(account)!, units, result.GetValue(key) ?? NewKey(), cancellationToken);
                Console.WriteLine(result.GetValue(json) ? JsonSerializer.Serialize(balance, EmcJson.Indented) : $"{balance.Account}: {Emc(balance.Available)} EMC available");
            });
        });
        return command;
    }

    public static Command Balance()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var account = new Argument<string>("account") { Description = "The account (default: the key's own; the operator may name any).", Arity = ArgumentArity.ZeroOrOne, DefaultValueFactory = _ => EmcApiClient.Me };
        var command = new Command("balance", "Show an account's balance and what its escrows still hold.") { coordinator, json, account };
        command.SetAction(async (result, cancellationToken) => await ApiCalls.CallAsync("account balance", async () =>
        {
            var balance = await ApiKeyLookup.Client(result, coordinator).GetBalanceAsync(result.GetValue(account)!, cancellationToken);
            if (result.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(balance, EmcJson.Indented));
                return;
            }

            Console.WriteLine($"{balance.Account}: {Emc(balance.Available)} EMC available, {Emc(balance.Total)} EMC with escrows");
            foreach (var escrow in balance.Escrows)
            {
                Console.WriteLine($"  escrow {escrow.Escrow}: {Emc(escrow.Balance)} EMC");
            }
        }));
        return command;
    }

    public static Command Ledger()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var account = new Option<string?>("--account") { Description = "A ledger account: user:ID, node:0xADDR, held:0xADDR, stake:0xADDR, escrow:job:ID, treasury, ... (default: your account; the operator's: every transaction)." };
        var after = new Option<long>("--after") { Description = "Only transactions after this sequence number (paging). Default 0.", DefaultValueFactory = _ => 0 };
        var limit = new Option<int>("--limit") { Description = "At most this many (1-1000). Default 100.", DefaultValueFactory = _ => 100 };
        var command = new Command("ledger", "List ledger transactions: every entry of each, signed, in units (1 EMC = 1000000).") { coordinator, json, account, after, limit };
        command.SetAction(async (result, cancellationToken) =>
        {
            if (result.GetValue(limit) is < 1 or > 1000 || result.GetValue(after) < 0)
            {
                await Console.Error.WriteLineAsync("emc ledger: --limit must be 1 to 1000 and --after 0 or more.");
                return 2;
            }

            return await ApiCalls.CallAsync("ledger", async () =>
            {
                var page = await ApiKeyLookup.Client(result, coordinator).GetLedgerAsync(result.GetValue(account), result.GetValue(after), result.GetValue(limit), cancellationToken);
                if (result.GetValue(json))
                {
                    Console.WriteLine(JsonSerializer.Serialize(page, EmcJson.Indented));
                    return;
                }

                foreach (var t in page)
                {
                    var entries = string.Join(", ", t.Entries.Select(e => string.Create(CultureInfo.InvariantCulture, $"{e.Account} {e.Amount:+0;-0}")));
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{t.Sequence,6} {t.Time:yyyy-MM-dd HH:mm:ss}Z {t.Kind,-14} {entries}{(t.JobId is null ? "" : $"  job {t.JobId}")}{(t.Round is null ? "" : $" round {t.Round}")}"));
                }
            });
        });
        return command;
    }

    public static Command Stake()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var node = new Argument<string>("node") { Description = "The node's address (0x...)." };
        var amount = new Argument<string?>("amount") { Description = "EMC to stake; without it, show the stake.", Arity = ArgumentArity.ZeroOrOne };
        var deposit = new Option<bool>("--deposit") { Description = "Stake new money (the operator's key: the on-ramp stand-in) instead of the node's released earnings." };
        var nodeData = NodeData();
        var key = IdempotencyKey();
        var command = new Command("stake", "Show or add a node's stake. Nodes need the minimum stake to take paid work; a proven fault slashes it.") { coordinator, json, node, amount, deposit, nodeData, key };
        command.SetAction(async (result, cancellationToken) =>
        {
            var address = result.GetValue(node)!;
            long units = 0;
            if (!EthAddress.TryParse(address, out _) || (result.GetValue(amount) is { } text && !TryParseAmount(text, out units, out _)))
            {
                await Console.Error.WriteLineAsync("emc stake: give a node address (0x and 40 hex digits) and, to stake, an amount in EMC above 0.");
                return 2;
            }

            return await ApiCalls.CallAsync("stake", async () =>
            {
                var client = Client(result, coordinator, nodeData);
                var view = result.GetValue(amount) is null
                    ? await client.GetStakeAsync(address, cancellationToken)
                    : await client.StakeAsync(address, units, result.GetValue(deposit) ? "deposit" : "earnings", result.GetValue(key) ?? NewKey(), cancellationToken);
                Print(view, result.GetValue(json));
            });
        });
        return command;
    }

    public static Command Unstake()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var node = new Argument<string>("node") { Description = "The node's address (0x...)." };
        var amount = new Argument<string>("amount") { Description = "EMC to take out of the stake; it leaves after the unstake delay and stays slashable until then." };
        var nodeData = NodeData();
        var key = IdempotencyKey();
        var command = new Command("unstake", "Start taking stake out (the node itself, or the operator). It is paid out after the ledger's delay.") { coordinator, json, node, amount, nodeData, key };
        command.SetAction(async (result, cancellationToken) =>
        {
            var address = result.GetValue(node)!;
            if (!EthAddress.TryParse(address, out _) || !TryParseAmount(result.GetValue(amount)!, out var units, out _))
            {
                await Console.Error.WriteLineAsync("emc unstake: give a node address (0x and 40 hex digits) and an amount in EMC above 0.");
                return 2;
            }

            return await ApiCalls.CallAsync("unstake", async () =>
                Print(await Client(result, coordinator, nodeData).UnstakeAsync(address, units, result.GetValue(key) ?? NewKey(), cancellationToken), result.GetValue(json)));
        });
        return command;
    }

    public static Command Settle()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var command = new Command("settle", "Close the next settlement epoch (the operator's key only): every node's released earnings, as a Merkle root a distributor contract verifies.") { coordinator, json };
        command.SetAction(async (result, cancellationToken) => await ApiCalls.CallAsync("settle", async () =>
        {
            var epoch = await ApiKeyLookup.Client(result, coordinator).SettleAsync(cancellationToken);
            Console.WriteLine(result.GetValue(json)
                ? JsonSerializer.Serialize(epoch, EmcJson.Indented)
                : string.Create(CultureInfo.InvariantCulture, $"Epoch {epoch.Number} closed: root {epoch.Root}, {epoch.Leaves} nodes, {Emc(epoch.TotalCumulative)} EMC settled in all (cumulative)."));
        }));
        return command;
    }

    public static Command ClaimProof()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var address = new Argument<string>("address") { Description = "The node's address (its reward wallet)." };
        var epoch = new Option<long?>("--epoch") { Description = "The epoch (default: the latest closed)." };
        var command = new Command("claim-proof", "Print a node's cumulative settled amount and its Merkle proof, for a distributor contract's claim.") { coordinator, json, address, epoch };
        command.SetAction(async (result, cancellationToken) =>
        {
            if (!EthAddress.TryParse(result.GetValue(address), out _) || result.GetValue(epoch) is < 1)
            {
                await Console.Error.WriteLineAsync("emc claim-proof: give a node address (0x and 40 hex digits) and, optionally, --epoch 1 or more.");
                return 2;
            }

            return await ApiCalls.CallAsync("claim-proof", async () =>
            {
                var proof = await ApiKeyLookup.Client(result, coordinator).GetClaimProofAsync(result.GetValue(address)!, result.GetValue(epoch), cancellationToken);
                if (result.GetValue(json))
                {
                    Console.WriteLine(JsonSerializer.Serialize(proof, EmcJson.Indented));
                    return;
                }

                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"epoch {proof.Epoch}, index {proof.Index}, account {proof.Account}, amount {proof.Amount} units ({Emc(proof.Amount)} EMC)"));
                Console.WriteLine($"root  {proof.Root}");
                Console.WriteLine($"leaf  {proof.Leaf}");
                Console.WriteLine("proof [" + string.Join(", ", proof.Proof) + "]");
            });
        });
        return command;
    }

    /// <summary>Reads EMC with up to 6 decimals, such as 25 or 0.000001, into ledger units (more than 0).</summary>
    internal static bool TryParseAmount(string text, out long units, out string error)
    {
        units = 0;
        error = $"'{text}' is not an amount: EMC above 0 with at most 6 decimals, such as 25 or 0.5";
        if (!decimal.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) || value <= 0 || value > long.MaxValue / UnitsPerEmc)
        {
            return false;
        }

        var scaled = value * UnitsPerEmc;
        if (scaled != decimal.Truncate(scaled))
        {
            return false;
        }

        units = (long)scaled;
        return true;
    }

    internal static string Emc(long units) => (units / (decimal)UnitsPerEmc).ToString("0.######", CultureInfo.InvariantCulture);

    private static string NewKey() => Guid.NewGuid().ToString("N");

    private static Option<string?> IdempotencyKey() => new("--idempotency-key") { Description = "Send this key instead of a fresh one, to retry a write without doing it twice." };

    private static Option<string?> NodeData() => new("--node-data") { Description = "Sign as the node with its key in this data folder (its node.key) instead of an API key: a node stakes its own earnings and unstakes." };

    private static EmcApiClient Client(ParseResult result, Option<Uri> coordinator, Option<string?> nodeData)
    {
        if (result.GetValue(nodeData) is not { } folder)
        {
            return ApiKeyLookup.Client(result, coordinator);
        }

        var key = NodeKeyStore.Load(Path.Combine(Path.GetFullPath(folder), NodeKeyStore.FileName));
        var signer = new NodeRequestSigner(key, TimeProvider.System);
        return new EmcApiClient(new HttpClient(signer.CreateHandler(new HttpClientHandler())) { BaseAddress = result.GetValue(coordinator), Timeout = TimeSpan.FromSeconds(30) });
    }

    private static void Print(StakeView view, bool json)
    {
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(view, EmcJson.Indented));
            return;
        }

        Console.WriteLine($"{view.Node}: {Emc(view.Staked)} EMC staked ({(view.Eligible ? "enough" : "not enough")} for paid work; the minimum is {Emc(view.Minimum)}), {Emc(view.Unstaking)} EMC unstaking, {Emc(view.Earned)} EMC earned, {Emc(view.Held)} EMC held for audit");
        foreach (var pending in view.Pending)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {Emc(pending.Amount)} EMC leaves the stake at {pending.DueAt:yyyy-MM-dd HH:mm:ss}Z"));
        }
    }
}

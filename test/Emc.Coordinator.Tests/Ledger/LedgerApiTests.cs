using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Json;
using Emc.Coordinator.Ledger;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Core;
using Emc.Core.Accounts;
using Emc.Core.Identity;
using Emc.Ledger;
using Microsoft.Extensions.DependencyInjection;
using Org.BouncyCastle.Crypto.Digests;

namespace Emc.Coordinator.Tests.Ledger;

/// <summary>The ledger over REST: funding, balances, journals, stake, and settlement proofs checked with an independent keccak256.</summary>
public sealed class LedgerApiTests
{
    private static readonly EthAddress NodeA = EthAddress.Parse("0x00000000000000000000000000000000000000a1");
    private static readonly EthAddress NodeB = EthAddress.Parse("0x00000000000000000000000000000000000000b2");

    [Fact]
    public async Task Fund_IsIdempotentPerKey_AndRefusesBadRequests()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var carol = await coordinator.CreateUserAsync("carol", funds: 0);

        Assert.Equal(HttpStatusCode.OK, (await FundAsync(coordinator.Http, "carol", 5_000_000, "fund-1")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await FundAsync(coordinator.Http, "carol", 5_000_000, "fund-1")).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await FundAsync(coordinator.Http, "carol", 7, "fund-1")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await FundAsync(coordinator.Http, "carol", 5, null)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await FundAsync(coordinator.Http, "carol", 0, "fund-2")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await FundAsync(coordinator.Http, "carol", -5, "fund-3")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await FundAsync(coordinator.Http, "nobody", 5, "fund-4")).StatusCode);

        var balance = (await carol.Http.GetFromJsonAsync<BalanceView>("api/v1/accounts/me/balance", EmcJson.Options))!;
        Assert.Equal(new BalanceView("carol", 5_000_000, []).Available, balance.Available);
        Assert.Empty(balance.Escrows);
        var journal = (await carol.Http.GetFromJsonAsync<List<LedgerTransactionView>>("api/v1/ledger", EmcJson.Options))!;
        var funded = Assert.Single(journal);
        Assert.Equal("Fund", funded.Kind);
        Assert.Contains(new LedgerEntryView("user:carol", 5_000_000), funded.Entries);
        Assert.Contains(new LedgerEntryView("external", -5_000_000), funded.Entries);

        // The operator sees every transaction; the books balance.
        var all = (await coordinator.Http.GetFromJsonAsync<List<LedgerTransactionView>>("api/v1/ledger", EmcJson.Options))!;
        Assert.Single(all);
        Assert.Equal(HttpStatusCode.BadRequest, (await coordinator.Http.GetAsync("api/v1/ledger?account=nonsense")).StatusCode);
    }

    [Fact]
    public async Task Stake_DepositByOperator_UnstakeWaitsForTheDelay_AndOverdrawIsRefused()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var service = coordinator.Host.Services.GetRequiredService<LedgerService>();
        var minimum = service.Prices.MinimumStake;

        var before = (await coordinator.Http.GetFromJsonAsync<StakeView>($"api/v1/nodes/{NodeA}/stake", EmcJson.Options))!;
        Assert.False(before.Eligible);

        var staked = await PostAsync<StakeView>(coordinator.Http, $"api/v1/nodes/{NodeA}/stake", new StakeRequest(minimum, "deposit"), "stake-1");
        Assert.Equal((minimum, true), (staked.Staked, staked.Eligible));

        var unstaking = await PostAsync<StakeView>(coordinator.Http, $"api/v1/nodes/{NodeA}/unstake", new AmountRequest(minimum / 2), "unstake-1");
        Assert.Equal(minimum / 2, unstaking.Unstaking);
        Assert.False(unstaking.Eligible);
        var pending = Assert.Single(unstaking.Pending);
        Assert.True(pending.DueAt > DateTimeOffset.UtcNow.AddDays(6));

        using var overdraw = Keyed(HttpMethod.Post, $"api/v1/nodes/{NodeA}/unstake", new AmountRequest(minimum), "unstake-2");
        using var refused = await coordinator.Http.SendAsync(overdraw);
        Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
        using var badSource = Keyed(HttpMethod.Post, $"api/v1/nodes/{NodeA}/stake", new StakeRequest(1, "gift"), "stake-2");
        Assert.Equal(HttpStatusCode.BadRequest, (await coordinator.Http.SendAsync(badSource)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await coordinator.Http.GetAsync("api/v1/nodes/0x12/stake")).StatusCode);
    }

    [Fact]
    public async Task Settlement_ProofsVerifyWithAnIndependentKeccak_AndClosedEpochsNeverChange()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        await coordinator.CreateUserAsync("dave", funds: 0);
        var ledger = await coordinator.Host.Services.GetRequiredService<LedgerService>().Opened;
        var none = CancellationToken.None;
        var job = EscrowId.Job("job-1");
        await ledger.FundAsync("t-fund", "dave", 10_000_000, null, none);
        await ledger.OpenEscrowAsync("t-escrow", "dave", job, 10_000_000, null, none);
        await ledger.PayAsync("t-pay-a", job, NodeA, 1_000_000, 500, null, none);
        await ledger.PayAsync("t-pay-b", job, NodeB, 2_000_000, 500, null, none);
        await ledger.ReleaseAsync("t-rel-a", "t-pay-a", null, none);
        await ledger.ReleaseAsync("t-rel-b", "t-pay-b", null, none);

        var first = await PostAsync<EpochView>(coordinator.Http, "api/v1/settlement/epochs", null, null);
        Assert.Equal((1L, 2), (first.Number, first.Leaves));
        Assert.Equal(950_000 + 1_900_000, first.TotalCumulative);

        var proofA = (await coordinator.Http.GetFromJsonAsync<ClaimProofView>($"api/v1/settlement/proofs/{NodeA}?epoch=1", EmcJson.Options))!;
        var proofB = (await coordinator.Http.GetFromJsonAsync<ClaimProofView>($"api/v1/settlement/proofs/{NodeB}", EmcJson.Options))!;
        Assert.Equal(950_000, proofA.Amount);
        Assert.Equal(1_900_000, proofB.Amount);
        Assert.True(IndependentlyVerifies(proofA, first.Root));
        Assert.True(IndependentlyVerifies(proofB, first.Root));
        Assert.False(IndependentlyVerifies(proofA with { Amount = proofA.Amount + 1 }, first.Root));
        Assert.False(IndependentlyVerifies(proofA with { Index = proofB.Index }, first.Root));

        // More work for A: the next epoch carries A's cumulative amount; epoch 1 stays as it was.
        await ledger.PayAsync("t-pay-a2", job, NodeA, 1_000_000, 500, null, none);
        await ledger.ReleaseAsync("t-rel-a2", "t-pay-a2", null, none);
        var second = await PostAsync<EpochView>(coordinator.Http, "api/v1/settlement/epochs", null, null);
        var proofA2 = (await coordinator.Http.GetFromJsonAsync<ClaimProofView>($"api/v1/settlement/proofs/{NodeA}?epoch=2", EmcJson.Options))!;
        Assert.Equal(1_900_000, proofA2.Amount);
        Assert.True(IndependentlyVerifies(proofA2, second.Root));
        Assert.Equal(first, (await coordinator.Http.GetFromJsonAsync<EpochView>("api/v1/settlement/epochs/1", EmcJson.Options))!);
        var again = (await coordinator.Http.GetFromJsonAsync<ClaimProofView>($"api/v1/settlement/proofs/{NodeA}?epoch=1", EmcJson.Options))!;
        Assert.Equal(proofA.Proof, again.Proof);
        Assert.Equal(proofA with { Proof = [] }, again with { Proof = [] });
        Assert.Equal(HttpStatusCode.NotFound, (await coordinator.Http.GetAsync("api/v1/settlement/epochs/9")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await coordinator.Http.GetAsync("api/v1/settlement/epochs/x")).StatusCode);
    }

    /// <summary>
    /// What a Merkle-distributor contract does, written here apart from the production code: the leaf is
    /// keccak256(abi.encodePacked(uint256 index, address account, uint256 amount)) and each proof element is
    /// hashed with the running hash in sorted order (OpenZeppelin's MerkleProof), with BouncyCastle's Keccak.
    /// </summary>
    private static bool IndependentlyVerifies(ClaimProofView proof, string root)
    {
        var packed = new byte[32 + 20 + 32];
        BinaryPrimitives.WriteInt64BigEndian(packed.AsSpan(24, 8), proof.Index);
        Convert.FromHexString(proof.Account[2..]).CopyTo(packed, 32);
        BinaryPrimitives.WriteInt64BigEndian(packed.AsSpan(packed.Length - 8, 8), proof.Amount);
        var hash = Keccak(packed);
        foreach (var sibling in proof.Proof)
        {
            var other = Convert.FromHexString(sibling[2..]);
            hash = hash.AsSpan().SequenceCompareTo(other) <= 0 ? Keccak([.. hash, .. other]) : Keccak([.. other, .. hash]);
        }

        return string.Equals("0x" + Convert.ToHexStringLower(hash), root, StringComparison.OrdinalIgnoreCase);
    }

    private static byte[] Keccak(byte[] data)
    {
        var digest = new KeccakDigest(256);
        digest.BlockUpdate(data, 0, data.Length);
        var output = new byte[32];
        digest.DoFinal(output, 0);
        return output;
    }

    private static async Task<HttpResponseMessage> FundAsync(HttpClient http, string account, long amount, string? key)
    {
        using var request = Keyed(HttpMethod.Post, $"api/v1/accounts/{account}/fund", new AmountRequest(amount), key);
        return await http.SendAsync(request);
    }

    private static async Task<T> PostAsync<T>(HttpClient http, string path, object? body, string? key)
    {
        using var request = Keyed(HttpMethod.Post, path, body, key);
        using var response = await http.SendAsync(request);
        Assert.True(response.IsSuccessStatusCode, $"{path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<T>(EmcJson.Options))!;
    }

    private static HttpRequestMessage Keyed(HttpMethod method, string path, object? body, string? key)
    {
        var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body, body.GetType(), options: EmcJson.Options);
        }

        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key);
        }

        return request;
    }
}

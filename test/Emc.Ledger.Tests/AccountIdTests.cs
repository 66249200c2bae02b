namespace Emc.Ledger.Tests;

public sealed class AccountIdTests
{
    private const string Address = "0x00000000000000000000000000000000000000ab";

    [Theory]
    [InlineData("external", AccountKind.External)]
    [InlineData("treasury", AccountKind.Treasury)]
    [InlineData("slashed", AccountKind.Slashed)]
    [InlineData("settled", AccountKind.Settled)]
    [InlineData("user:alice", AccountKind.User)]
    [InlineData("user:acct-1.B_2", AccountKind.User)]
    [InlineData("node:" + Address, AccountKind.Node)]
    [InlineData("held:" + Address, AccountKind.Held)]
    [InlineData("stake:" + Address, AccountKind.Stake)]
    [InlineData("unstaking:" + Address, AccountKind.Unstaking)]
    [InlineData("escrow:job:job-12", AccountKind.Escrow)]
    [InlineData("escrow:deployment:llama-3", AccountKind.Escrow)]
    public void Parse_ValidText_RoundTripsWithKind(string text, AccountKind kind)
    {
        var account = AccountId.Parse(text);

        Assert.Equal(kind, account.Kind);
        Assert.Equal(text, account.ToString());
        Assert.Equal(account, AccountId.Parse(account.ToString()));
    }

    [Fact]
    public void Parse_UpperCaseAddress_IsCanonicalisedToLowerCase()
    {
        var account = AccountId.Parse("node:0x00000000000000000000000000000000000000AB");

        Assert.Equal("node:" + Address, account.ToString());
        Assert.Equal(AccountId.Node(Core.Identity.EthAddress.Parse(Address)), account);
        Assert.Equal(Address, account.Address.ToString());
    }

    [Fact]
    public void Factories_BuildTheDocumentedForms()
    {
        var node = LedgerFixture.Node(0xab);

        Assert.Equal("user:bob", AccountId.User("bob").ToString());
        Assert.Equal("bob", AccountId.User("bob").UserId);
        Assert.Equal("held:" + Address, AccountId.Held(node).ToString());
        Assert.Equal("escrow:job:7", AccountId.ForEscrow(EscrowId.Job("7")).ToString());
        Assert.Equal(EscrowKind.Deployment, AccountId.ForEscrow(EscrowId.Deployment("d")).Escrow!.Kind);
        Assert.NotEqual(AccountId.Node(node), AccountId.Stake(node));
        Assert.True(AccountId.External.MayGoNegative);
        Assert.False(AccountId.Treasury.MayGoNegative);
    }

    [Theory]
    [InlineData("")]
    [InlineData("user:")]
    [InlineData("user:al ice")]
    [InlineData("user:a:b")]
    [InlineData("User:alice")]
    [InlineData("node:0x1234")]
    [InlineData("node:00000000000000000000000000000000000000ab00")]
    [InlineData("node:0x00000000000000000000000000000000000000zz")]
    [InlineData("escrow:job:")]
    [InlineData("escrow:task:1")]
    [InlineData("escrow:7")]
    [InlineData("wallet:alice")]
    [InlineData("Treasury")]
    [InlineData("external:1")]
    public void Parse_BadText_ThrowsFormatExceptionListingTheForms(string text)
    {
        Assert.False(AccountId.TryParse(text, out _));
        var ex = Assert.Throws<FormatException>(() => AccountId.Parse(text));
        Assert.Contains("expected user:ID, node:0xADDR", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_NameLongerThanLimit_IsRefused()
    {
        Assert.True(AccountId.TryParse("user:" + new string('a', AccountId.MaxNameLength), out _));
        Assert.False(AccountId.TryParse("user:" + new string('a', AccountId.MaxNameLength + 1), out _));
    }

    [Theory]
    [InlineData("")]
    [InlineData("a b")]
    [InlineData("x/y")]
    public void User_BadId_ThrowsArgumentException(string id)
    {
        Assert.Throws<ArgumentException>(() => AccountId.User(id));
        Assert.Throws<ArgumentException>(() => EscrowId.Job(id));
    }

    [Fact]
    public void EscrowId_ParseAndFormat_RoundTrip()
    {
        Assert.Equal(EscrowId.Job("job-3"), EscrowId.Parse("job:job-3"));
        Assert.Equal("deployment:x", EscrowId.Parse("deployment:x").ToString());
        Assert.Throws<FormatException>(() => EscrowId.Parse("jobs:1"));
    }
}

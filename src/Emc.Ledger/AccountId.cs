using System.Diagnostics.CodeAnalysis;
using Emc.Core.Identity;

namespace Emc.Ledger;

/// <summary>
/// A ledger account. The text forms are
/// <c>user:ID</c>, <c>node:0xADDR</c>, <c>held:0xADDR</c>, <c>stake:0xADDR</c>, <c>unstaking:0xADDR</c>,
/// <c>escrow:job:ID</c>, <c>escrow:deployment:ID</c>, <c>treasury</c>, <c>slashed</c>, <c>settled</c> and
/// <c>external</c>, where ID is 1 to 128 of <c>A-Z a-z 0-9 . _ -</c> and 0xADDR a node's Ethereum-style
/// address (any case on input, lower case in the canonical form). Two ids are equal when their
/// canonical forms are.
/// </summary>
public sealed class AccountId : IEquatable<AccountId>
{
    /// <summary>The longest user, job or deployment id.</summary>
    public const int MaxNameLength = 128;

    private readonly string _text;

    private AccountId(AccountKind kind, string text, string? name = null, EthAddress? address = null, EscrowId? escrow = null)
    {
        Kind = kind;
        _text = text;
        UserId = name;
        Address = address;
        Escrow = escrow;
    }

    /// <summary>The on-ramp, the only account allowed below zero.</summary>
    public static AccountId External { get; } = new(AccountKind.External, "external");

    /// <summary>Protocol fees.</summary>
    public static AccountId Treasury { get; } = new(AccountKind.Treasury, "treasury");

    /// <summary>Slashed stake.</summary>
    public static AccountId Slashed { get; } = new(AccountKind.Slashed, "slashed");

    /// <summary>What closed epochs have handed to the on-chain distributor.</summary>
    public static AccountId Settled { get; } = new(AccountKind.Settled, "settled");

    /// <summary>What the account holds.</summary>
    public AccountKind Kind { get; }

    /// <summary>The user of a <see cref="AccountKind.User"/> account, otherwise null.</summary>
    public string? UserId { get; }

    /// <summary>The node of a node, held, stake or unstaking account, otherwise null.</summary>
    public EthAddress? Address { get; }

    /// <summary>The escrow of an <see cref="AccountKind.Escrow"/> account, otherwise null.</summary>
    public EscrowId? Escrow { get; }

    /// <summary>Whether the balance may go below zero (only <see cref="External"/>).</summary>
    public bool MayGoNegative => Kind == AccountKind.External;

    /// <summary>A user's spendable balance.</summary>
    public static AccountId User(string userId)
    {
        CheckName(userId, "user id", nameof(userId));
        return new AccountId(AccountKind.User, "user:" + userId, name: userId);
    }

    /// <summary>A node's released earnings.</summary>
    public static AccountId Node(EthAddress node) => ForNode(AccountKind.Node, node);

    /// <summary>A node's earnings inside their audit window.</summary>
    public static AccountId Held(EthAddress node) => ForNode(AccountKind.Held, node);

    /// <summary>A node's stake.</summary>
    public static AccountId Stake(EthAddress node) => ForNode(AccountKind.Stake, node);

    /// <summary>A node's stake on its way out.</summary>
    public static AccountId Unstaking(EthAddress node) => ForNode(AccountKind.Unstaking, node);

    /// <summary>A workload's escrow.</summary>
    public static AccountId ForEscrow(EscrowId escrow)
    {
        ArgumentNullException.ThrowIfNull(escrow);
        return new AccountId(AccountKind.Escrow, "escrow:" + escrow, escrow: escrow);
    }

    /// <summary>Parses any of the text forms in the type's summary.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out AccountId? account)
    {
        account = null;
        if (text is null)
        {
            return false;
        }

        switch (text)
        {
            case "external":
                account = External;
                return true;
            case "treasury":
                account = Treasury;
                return true;
            case "slashed":
                account = Slashed;
                return true;
            case "settled":
                account = Settled;
                return true;
        }

        var colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
        {
            return false;
        }

        var rest = text[(colon + 1)..];
        switch (text[..colon])
        {
            case "user" when IsName(rest):
                account = new AccountId(AccountKind.User, text, name: rest);
                return true;
            case "escrow" when EscrowId.TryParse(rest, out var escrow):
                account = ForEscrow(escrow);
                return true;
        }

        AccountKind? kind = text[..colon] switch
        {
            "node" => AccountKind.Node,
            "held" => AccountKind.Held,
            "stake" => AccountKind.Stake,
            "unstaking" => AccountKind.Unstaking,
            _ => null,
        };
        if (kind is null || !EthAddress.TryParse(rest, out var address))
        {
            return false;
        }

        account = ForNode(kind.Value, address.Value);
        return true;
    }

    /// <summary>Parses an account id or throws <see cref="FormatException"/> naming the forms accepted.</summary>
    public static AccountId Parse(string text) =>
        TryParse(text, out var account)
            ? account
            : throw new FormatException(
                $"'{text}' is not a ledger account: expected user:ID, node:0xADDR, held:0xADDR, stake:0xADDR, unstaking:0xADDR, "
                + "escrow:job:ID, escrow:deployment:ID, treasury, slashed, settled or external "
                + $"(ID: 1 to {MaxNameLength} of A-Z a-z 0-9 . _ -; 0xADDR: 0x and 40 hex digits).");

    /// <summary>The canonical text form.</summary>
    public override string ToString() => _text;

    public bool Equals(AccountId? other) => other is not null && string.Equals(_text, other._text, StringComparison.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as AccountId);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(_text);

    public static bool operator ==(AccountId? left, AccountId? right) => left is null ? right is null : left.Equals(right);

    public static bool operator !=(AccountId? left, AccountId? right) => !(left == right);

    internal static bool IsName(ReadOnlySpan<char> name)
    {
        if (name.Length is 0 or > MaxNameLength)
        {
            return false;
        }

        foreach (var ch in name)
        {
            if (!char.IsAsciiLetterOrDigit(ch) && ch is not ('.' or '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    internal static string CheckName(string name, string what, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(name, parameterName);
        return IsName(name)
            ? name
            : throw new ArgumentException($"'{name}' is not a valid {what}: expected 1 to {MaxNameLength} of A-Z a-z 0-9 . _ -.", parameterName);
    }

    private static AccountId ForNode(AccountKind kind, EthAddress node)
    {
        var prefix = kind switch
        {
            AccountKind.Node => "node:",
            AccountKind.Held => "held:",
            AccountKind.Stake => "stake:",
            _ => "unstaking:",
        };
        return new AccountId(kind, prefix + node, address: node);
    }
}

namespace Emc.Ledger;

/// <summary>What an account holds; <see cref="AccountId"/> documents each kind's text form.</summary>
public enum AccountKind
{
    /// <summary><c>external</c>: the on-ramp. The only account that may go negative; minus its balance is all money funded in.</summary>
    External,

    /// <summary><c>user:ID</c>: a user's spendable balance.</summary>
    User,

    /// <summary><c>node:0xADDR</c>: a node's earnings that passed their audit window, to be settled on chain or staked.</summary>
    Node,

    /// <summary><c>held:0xADDR</c>: a node's earnings still inside their audit window; a proven fault voids them.</summary>
    Held,

    /// <summary><c>stake:0xADDR</c>: a node's stake, which a proven fault slashes.</summary>
    Stake,

    /// <summary><c>unstaking:0xADDR</c>: stake on its way out, released after a delay and slashable until then.</summary>
    Unstaking,

    /// <summary><c>escrow:job:ID</c> or <c>escrow:deployment:ID</c>: a workload's reserved budget.</summary>
    Escrow,

    /// <summary><c>treasury</c>: protocol fees.</summary>
    Treasury,

    /// <summary><c>slashed</c>: stake taken for proven faults.</summary>
    Slashed,

    /// <summary><c>settled</c>: what closed epochs have handed to the on-chain distributor.</summary>
    Settled,
}

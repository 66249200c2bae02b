namespace Emc.Ledger;

/// <summary>The operation that posted a transaction; <c>docs/ledger.md</c> lists each one's entries.</summary>
public enum TransactionKind
{
    /// <summary>external → user: the operator credits a user (the stand-in for a token on-ramp).</summary>
    Fund,

    /// <summary>user → escrow: a job or deployment reserves its budget.</summary>
    OpenEscrow,

    /// <summary>user → escrow: more budget for an open escrow, from its owner.</summary>
    TopUpEscrow,

    /// <summary>escrow → held:node (net) and treasury (fee): verified work, paid into the audit window.</summary>
    Pay,

    /// <summary>held:node → node: a payment whose audit window closed without a fault.</summary>
    Release,

    /// <summary>held:node and treasury → escrow (or its owner): a payment for work proven faulty.</summary>
    Void,

    /// <summary>escrow → owner: everything left in an escrow.</summary>
    Refund,

    /// <summary>node → stake: a node stakes from its released earnings.</summary>
    Stake,

    /// <summary>external → stake: a node stakes with money from outside (a new node has no earnings).</summary>
    StakeFromExternal,

    /// <summary>stake → unstaking: stake starts on its way out; it can be completed after the unstake delay.</summary>
    RequestUnstake,

    /// <summary>unstaking → node: unstakes whose delay has passed.</summary>
    CompleteUnstake,

    /// <summary>stake and unstaking → slashed: a proven fault.</summary>
    Slash,

    /// <summary>every node → settled: an epoch hands released earnings to the on-chain distributor.</summary>
    Settle,
}

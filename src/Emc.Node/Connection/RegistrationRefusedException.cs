using Emc.Contracts.Node.V1;

namespace Emc.Node.Connection;

/// <summary>The coordinator refused the node's registration, with its reason.</summary>
public sealed class RegistrationRefusedException(RefusalCode code, string reason)
    : Exception($"The coordinator refused the node ({code}): {reason}")
{
    public RefusalCode Code { get; } = code;

    public string Reason { get; } = reason;

    /// <summary>Whether trying again can help (a lost race), as opposed to a fault the operator must fix.</summary>
    public bool IsRetryable => Code is RefusalCode.BadChallenge or RefusalCode.Superseded;
}

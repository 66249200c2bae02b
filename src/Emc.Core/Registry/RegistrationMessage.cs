using System.Security.Cryptography;
using System.Text;

namespace Emc.Core.Registry;

/// <summary>
/// The text a node signs to register. It binds the coordinator's one-time challenge to the exact
/// bytes of the registration payload, and is readable in a wallet's signing prompt.
/// </summary>
public static class RegistrationMessage
{
    /// <summary>Builds the message for EIP-191 signing.</summary>
    public static byte[] Build(string coordinatorId, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> payload)
    {
        var text = $"EMC node registration\ncoordinator: {coordinatorId}\nchallenge: {Convert.ToHexStringLower(nonce)}\npayload sha256: {Convert.ToHexStringLower(SHA256.HashData(payload))}";
        return Encoding.UTF8.GetBytes(text);
    }
}

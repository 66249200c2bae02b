using Emc.Contracts.Node.V1;
using Emc.Coordinator.Registry;
using Emc.Core.Hardware;
using Emc.Core.Identity;
using Emc.Core.Registry;
using Emc.Core.Scheduling;
using Google.Protobuf;

namespace Emc.Coordinator.Gateway;

/// <summary>A refused registration: the code and a reason the node operator can act on.</summary>
public sealed record RegistrationRefusal(RefusalCode Code, string Reason);

/// <summary>
/// Checks a signed registration against the challenge issued on its stream: the challenge, then
/// the signature, then the hardware claims. Any failure refuses the whole registration.
/// </summary>
public sealed class RegistrationVerifier(ChallengeIssuer challenges)
{
    /// <summary>Verifies; returns the registered node, or the refusal.</summary>
    public (RegisteredNode? Node, RegistrationRefusal? Refusal) Verify(
        EthAddress claimedAddress, string coordinatorId, IssuedChallenge challenge, Register register)
    {
        var verdict = challenges.Redeem(challenge, register.Nonce.Span);
        switch (verdict)
        {
            case ChallengeVerdict.Replayed:
                return Refuse(RefusalCode.BadChallenge, "the challenge was already used: a registration cannot be replayed");
            case ChallengeVerdict.NotIssued:
                return Refuse(RefusalCode.BadChallenge, "the challenge answered is not the one issued on this connection (replayed or forged)");
            case ChallengeVerdict.Expired:
                return Refuse(RefusalCode.BadChallenge, "the challenge expired before the node answered");
        }

        var message = RegistrationMessage.Build(coordinatorId, register.Nonce.Span, register.Payload.Span);
        var digest = Signatures.PersonalMessageDigest(message);
        if (!Signatures.TryRecoverAddress(digest, register.Signature.Span, out var signer, out var error))
        {
            return Refuse(RefusalCode.BadSignature, $"the signature is invalid: {error}");
        }

        if (signer.Value != claimedAddress)
        {
            return Refuse(RefusalCode.BadSignature, $"the registration is signed by {signer}, not by the node {claimedAddress}");
        }

        NodeRegistration payload;
        try
        {
            payload = NodeRegistration.Parser.ParseFrom(register.Payload);
        }
        catch (InvalidProtocolBufferException ex)
        {
            return Refuse(RefusalCode.BadHardware, $"the registration payload is not a NodeRegistration message: {ex.Message}");
        }

        if (!EthAddress.TryParse(payload.Address, out var payloadAddress) || payloadAddress.Value != claimedAddress)
        {
            return Refuse(RefusalCode.BadHardware, "the registration payload names another address than the node's");
        }

        if (payload.Hardware is null || payload.Benchmark is null)
        {
            return Refuse(RefusalCode.BadHardware, "the registration has no hardware profile or no benchmark");
        }

        var hardware = payload.Hardware.ToDomain();
        var benchmark = payload.Benchmark.ToDomain();
        var devices = payload.Devices.ToList();
        var problem = HardwareValidator.Validate(payload.Name, hardware, benchmark, devices);
        if (problem is not null)
        {
            return Refuse(RefusalCode.BadHardware, $"malformed hardware data: {problem}");
        }

        if (payload.AgentVersion.Length > 64)
        {
            return Refuse(RefusalCode.BadHardware, "the agent version is longer than 64 characters");
        }

        var labelProblem = PlacementAttributes.CheckLabels(payload.Labels);
        if (labelProblem is not null)
        {
            return Refuse(RefusalCode.BadHardware, labelProblem);
        }

        if (payload.Price < 0)
        {
            return Refuse(RefusalCode.BadHardware, "the price must not be negative");
        }

        var cacheProblem = PlacementAttributes.CheckCacheKeys(payload.CacheKeys);
        if (cacheProblem is not null)
        {
            return Refuse(RefusalCode.BadHardware, cacheProblem);
        }

        return (new RegisteredNode(claimedAddress.ToString(), payload.Name, payload.AgentVersion, hardware, benchmark, devices)
        {
            Labels = payload.Labels.ToDictionary(StringComparer.Ordinal),
            Price = payload.Price,
            CacheKeys = [.. payload.CacheKeys.Distinct(StringComparer.Ordinal)],
        }, null);
    }

    private static (RegisteredNode?, RegistrationRefusal?) Refuse(RefusalCode code, string reason) => (null, new RegistrationRefusal(code, reason));
}

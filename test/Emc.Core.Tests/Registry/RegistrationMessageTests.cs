using System.Text;
using Emc.Core.Registry;

namespace Emc.Core.Tests.Registry;

public sealed class RegistrationMessageTests
{
    private static readonly byte[] Nonce = Convert.FromHexString("00112233445566778899aabbccddeeff");
    private static readonly byte[] Payload = "{\"name\":\"lab-node-1\"}"u8.ToArray();

    [Fact]
    public void Build_SameInputs_GivesSameBytes()
    {
        Assert.Equal(
            RegistrationMessage.Build("coord-a", Nonce, Payload),
            RegistrationMessage.Build("coord-a", (byte[])Nonce.Clone(), (byte[])Payload.Clone()));
    }

    [Fact]
    public void Build_Always_IsReadableTextNamingCoordinatorChallengeAndPayloadHash()
    {
        var text = Encoding.UTF8.GetString(RegistrationMessage.Build("coord-a", Nonce, Payload));

        Assert.StartsWith("EMC node registration\n", text, StringComparison.Ordinal);
        Assert.Contains("coordinator: coord-a\n", text, StringComparison.Ordinal);
        Assert.Contains("challenge: 00112233445566778899aabbccddeeff\n", text, StringComparison.Ordinal);
        Assert.EndsWith(
            "payload sha256: " + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Payload)),
            text,
            StringComparison.Ordinal);
    }

    [Fact]
    public void Build_OtherCoordinator_ChangesBytes()
    {
        Assert.NotEqual(RegistrationMessage.Build("coord-a", Nonce, Payload), RegistrationMessage.Build("coord-b", Nonce, Payload));
    }

    [Fact]
    public void Build_AnyNonceBitFlipped_ChangesBytes()
    {
        var original = RegistrationMessage.Build("coord-a", Nonce, Payload);
        for (var bit = 0; bit < Nonce.Length * 8; bit++)
        {
            var nonce = (byte[])Nonce.Clone();
            nonce[bit / 8] ^= (byte)(1 << (bit % 8));

            Assert.NotEqual(original, RegistrationMessage.Build("coord-a", nonce, Payload));
        }
    }

    [Fact]
    public void Build_AnyPayloadBitFlipped_ChangesBytes()
    {
        var original = RegistrationMessage.Build("coord-a", Nonce, Payload);
        for (var bit = 0; bit < Payload.Length * 8; bit++)
        {
            var payload = (byte[])Payload.Clone();
            payload[bit / 8] ^= (byte)(1 << (bit % 8));

            Assert.NotEqual(original, RegistrationMessage.Build("coord-a", Nonce, payload));
        }
    }

    [Fact]
    public void Build_PayloadExtendedOrTruncated_ChangesBytes()
    {
        var original = RegistrationMessage.Build("coord-a", Nonce, Payload);

        Assert.NotEqual(original, RegistrationMessage.Build("coord-a", Nonce, [.. Payload, 0]));
        Assert.NotEqual(original, RegistrationMessage.Build("coord-a", Nonce, Payload.AsSpan(..^1)));
        Assert.NotEqual(original, RegistrationMessage.Build("coord-a", Nonce, []));
    }

    [Fact]
    public void Build_ShorterNonce_ChangesBytes()
    {
        Assert.NotEqual(
            RegistrationMessage.Build("coord-a", Nonce, Payload),
            RegistrationMessage.Build("coord-a", Nonce.AsSpan(..^1), Payload));
    }
}

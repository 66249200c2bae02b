using Emc.Core.Identity;

namespace Emc.Core.Tests.Identity;

public sealed class EthAddressTests
{
    // The web3.js documentation's example account.
    private const string KnownSecret = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    private const string KnownAddress = "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23";

    [Fact]
    public void FromSecret_KnownKey_HasKnownAddress()
    {
        using var key = NodeKey.FromSecret(Convert.FromHexString(KnownSecret));

        Assert.Equal(KnownAddress, key.Address.ToString());
    }

    [Fact]
    public void FromPublicKey_KeyDerivedByBouncyCastle_HasKnownAddress()
    {
        var publicKey = ReferenceSecp256k1.PublicKey(Convert.FromHexString(KnownSecret));

        Assert.Equal(KnownAddress, EthAddress.FromPublicKey(publicKey).ToString());
        Assert.Equal(KnownAddress, EthAddress.FromPublicKey(publicKey.AsSpan(1)).ToString());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(33)]
    [InlineData(63)]
    [InlineData(66)]
    public void FromPublicKey_WrongLength_ThrowsArgumentException(int length)
    {
        Assert.Throws<ArgumentException>(() => EthAddress.FromPublicKey(new byte[length]));
    }

    [Fact]
    public void FromPublicKey_65BytesWithoutPrefix_ThrowsArgumentException()
    {
        var publicKey = ReferenceSecp256k1.PublicKey(Convert.FromHexString(KnownSecret));
        publicKey[0] = 0x02;

        Assert.Throws<ArgumentException>(() => EthAddress.FromPublicKey(publicKey));
    }

    [Theory]
    [InlineData("0x2c7536e3605d9c16a7a3d7b1898e529396a65c23")]
    [InlineData("0x2C7536E3605D9C16A7A3D7B1898E529396A65C23")]
    [InlineData("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23")]
    [InlineData("0X2c7536e3605d9c16a7a3d7b1898e529396a65c23")]
    public void TryParse_AnyCase_NormalisesToLowerCase(string text)
    {
        Assert.True(EthAddress.TryParse(text, out var address));
        Assert.Equal(KnownAddress, address.Value.ToString());
    }

    [Fact]
    public void TryParse_DifferentCases_GiveEqualAddresses()
    {
        Assert.True(EthAddress.TryParse("0x2C7536E3605D9C16A7A3D7B1898E529396A65C23", out var upper));
        Assert.True(EthAddress.TryParse(KnownAddress, out var lower));

        Assert.Equal(lower, upper);
        Assert.Equal(lower.GetHashCode(), upper.GetHashCode());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("0x")]
    [InlineData("2c7536e3605d9c16a7a3d7b1898e529396a65c23")]
    [InlineData("002c7536e3605d9c16a7a3d7b1898e529396a65c23")]
    [InlineData("0x2c7536e3605d9c16a7a3d7b1898e529396a65c2")]
    [InlineData("0x2c7536e3605d9c16a7a3d7b1898e529396a65c233")]
    [InlineData("0x2c7536e3605d9c16a7a3d7b1898e529396a65c2g")]
    [InlineData("0x2c7536e3605d9c16a7a3d7b1898e529396a65c2 ")]
    [InlineData(" 0x2c7536e3605d9c16a7a3d7b1898e529396a65c2")]
    [InlineData("0x2c7536e3605d9c16a7a3d7b1898e529396a6５c23")]
    public void TryParse_Malformed_ReturnsFalse(string? text)
    {
        Assert.False(EthAddress.TryParse(text, out var address));
        Assert.Null(address);
    }

    [Fact]
    public void Parse_Malformed_ThrowsFormatExceptionNamingTheText()
    {
        var ex = Assert.Throws<FormatException>(() => EthAddress.Parse("0xnope"));

        Assert.Contains("0xnope", ex.Message, StringComparison.Ordinal);
        Assert.Contains("40 hex digits", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Default_ToString_IsZeroAddress()
    {
        Assert.Equal("0x" + new string('0', 40), default(EthAddress).ToString());
    }
}

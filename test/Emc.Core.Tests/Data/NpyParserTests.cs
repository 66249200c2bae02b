using System.Buffers.Binary;
using System.IO.Compression;
using Emc.Core.Data;
using static Emc.Core.Tests.Data.DataFiles;

namespace Emc.Core.Tests.Data;

public sealed class NpyParserTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Parse_KerasNames_GivesSplitsAndRoles(bool gzip)
    {
        byte[] Maybe(byte[] content) => gzip ? Gzip(content) : content;

        var dataset = Parse(
            DatasetFormat.Npy,
            Source("x_train.npy", Maybe(NpyU8([3, 2, 2], Pattern(12)))),
            Source("train_y.npy" + (gzip ? ".gz" : ""), Maybe(NpyI64(0, 1, 2))),
            Source("X_test.npy", Maybe(NpyU8([1, 2, 2], Pattern(4)))),
            Source("y_test.npy", Maybe(NpyI64(2))),
            Source("images_val.npy", Maybe(NpyU8([2, 2, 2], Pattern(8)))),
            Source("labels_val.npy", Maybe(NpyI64(1, 1))));

        Assert.Equal(["train", "validation", "test"], dataset.Splits.Keys);
        var train = dataset.Splits["train"];
        Assert.Equal(ElementType.U8, train.ElementType);
        Assert.Equal([2, 2], train.SampleShape);
        Assert.Equal(Pattern(12), train.Data);
        Assert.Equal([0L, 1, 2], train.Labels!);
        Assert.All(dataset.Splits.Values, split => Assert.Equal(3, split.Classes));
    }

    [Fact]
    public void Parse_Float32Features_KeepsValues()
    {
        var dataset = Parse(
            DatasetFormat.Npy,
            Source("x.npy", NpyF32([2, 3], 1, 2, 3, 4.5f, -5, 6)),
            Source("y.npy", NpyI64(0, 1)));

        var train = dataset.Splits["train"];
        Assert.Equal(ElementType.F32, train.ElementType);
        Assert.Equal([3], train.SampleShape);
        Assert.Equal([1f, 2, 3, 4.5f, -5, 6], Floats(train.Data));
    }

    [Theory]
    [InlineData("|i1", new byte[] { 0xFF, 2 }, new float[] { -1, 2 })]
    [InlineData("<i2", new byte[] { 0xFE, 0xFF, 0, 1 }, new float[] { -2, 256 })]
    [InlineData(">i2", new byte[] { 0xFF, 0xFE, 1, 0 }, new float[] { -2, 256 })]
    [InlineData("<i4", new byte[] { 0, 1, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF }, new float[] { 256, -1 })]
    [InlineData("<i8", new byte[] { 3, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }, new float[] { 3, -1 })]
    [InlineData("<f8", new byte[] { 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0, 0, 0, 0, 0, 0, 0, 0xC0 }, new float[] { 1.5f, -2 })]
    [InlineData(">f4", new byte[] { 0x3F, 0xC0, 0, 0, 0xC0, 0, 0, 0 }, new float[] { 1.5f, -2 })]
    [InlineData("|b1", new byte[] { 1, 0 }, new float[] { 1, 0 })]
    [InlineData("<f2", new byte[] { 0x00, 0x3E, 0x00, 0xC0 }, new float[] { 1.5f, -2 })]
    public void Parse_OtherFeatureDtypes_ConvertToF32(string descr, byte[] payload, float[] expected)
    {
        var dataset = Parse(DatasetFormat.Npy, Source("x.npy", Npy(descr, [2, 1], payload)), Source("y.npy", NpyI64(0, 0)));

        Assert.Equal(ElementType.F32, dataset.Splits["train"].ElementType);
        Assert.Equal(expected, Floats(dataset.Splits["train"].Data));
    }

    [Theory]
    [InlineData("|u1", new byte[] { 1, 2 })]
    [InlineData("|i1", new byte[] { 1, 2 })]
    [InlineData("<i2", new byte[] { 1, 0, 2, 0 })]
    [InlineData(">i4", new byte[] { 0, 0, 0, 1, 0, 0, 0, 2 })]
    [InlineData("<u8", new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0 })]
    public void Parse_IntegerLabelDtypes_GiveLabels(string descr, byte[] payload)
    {
        var dataset = Parse(DatasetFormat.Npy, Source("x.npy", NpyU8([2, 1], [0, 0])), Source("y.npy", Npy(descr, [2], payload)));

        Assert.Equal([1L, 2], dataset.Splits["train"].Labels!);
    }

    [Fact]
    public void Parse_LabelsOfShapeNBy1_AreAccepted()
    {
        var dataset = Parse(DatasetFormat.Npy, Source("x.npy", NpyU8([2, 1], [0, 0])), Source("y.npy", Npy("|u1", [2, 1], [1, 0])));

        Assert.Equal([1L, 0], dataset.Splits["train"].Labels!);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void Parse_Version2And3Headers_AreRead(int major)
    {
        var dataset = Parse(DatasetFormat.Npy, Source("x.npy", Npy("|u1", [1, 2], [7, 8], major: major)), Source("y.npy", NpyI64(0)));

        Assert.Equal([7, 8], dataset.Splits["train"].Data);
    }

    [Fact]
    public void Parse_HeaderWithPython2Longs_IsRead()
    {
        var header = "{'descr': '|u1', 'fortran_order': False, 'shape': (1L, 2L), }";

        var dataset = Parse(DatasetFormat.Npy, Source("x.npy", Npy("", [], [7, 8], header: header)), Source("y.npy", NpyI64(0)));

        Assert.Equal([1, 2], [dataset.Splits["train"].Count, .. dataset.Splits["train"].SampleShape]);
    }

    [Fact]
    public void Parse_FortranOrder_SaysSaveInCOrder()
    {
        Fails(
            DatasetFormat.Npy,
            [Source("x_train.npy", Npy("|u1", [2, 2], [1, 2, 3, 4], fortranOrder: true)), Source("y_train.npy", NpyI64(0, 1))],
            "x_train.npy: the array is stored in Fortran order");
    }

    [Fact]
    public void Parse_FortranOrderVector_IsSameAsCOrder()
    {
        var dataset = Parse(DatasetFormat.Npy, Source("x.npy", NpyU8([1, 1], [5])), Source("y.npy", Npy("<i8", [1], new byte[8], fortranOrder: true)));

        Assert.Equal([0L], dataset.Splits["train"].Labels!);
    }

    [Fact]
    public void Parse_NotNpy_SaysNotANpyFile()
    {
        Fails(DatasetFormat.Npy, [Source("x.npy", Utf8("hello, world"))], "x.npy: not a .npy file (it starts with 68656c6c6f2c");
    }

    [Fact]
    public void Parse_UnknownVersion_SaysUnsupportedVersion()
    {
        var file = NpyI64(1);
        file[6] = 4;

        Fails(DatasetFormat.Npy, [Source("y.npy", file)], "y.npy: unsupported .npy version 4.0");
    }

    [Theory]
    [InlineData("<c8", "unsupported dtype '<c8'")]
    [InlineData("<U10", "unsupported dtype '<U10'")]
    [InlineData("|O", "unsupported dtype '|O'")]
    public void Parse_UnsupportedDtype_NamesIt(string descr, string message)
    {
        Fails(DatasetFormat.Npy, [Source("x.npy", Npy(descr, [1, 1], new byte[8]))], $"x.npy: {message}");
    }

    [Fact]
    public void Parse_StructuredDtype_SaysNotSupported()
    {
        var header = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1, 1), }";

        Fails(DatasetFormat.Npy, [Source("x.npy", Npy("", [], new byte[4], header: header))], "x.npy: structured dtypes");
    }

    [Theory]
    [InlineData("{'descr': '|u1', 'fortran_order': False}", "the header lacks 'shape'")]
    [InlineData("{'descr': '|u1', 'shape': (1, 1)", "not a valid .npy header (expected '}'")]
    [InlineData("{'descr': '|u1', 'shape': (1, x)}", "not a valid .npy header (expected a dimension")]
    [InlineData("{'descr': '|u1', 'fortran_order': Maybe, 'shape': (1, 1)}", "expected True or False")]
    [InlineData("{'descr': '|u1', 'shape': (1, 99999999999)}", "dimension 99999999999 of the shape is too large")]
    [InlineData("{'descr': '|u1', 'shape': ()}", "the array is a scalar")]
    [InlineData("{'descr': '|u1', 'shape': (1, 0)}", "dimension 1 of the shape [1, 0] is 0")]
    [InlineData("{'descr': '|u1', 'shape': (1, 1), 'extra': 1}", "unexpected key 'extra'")]
    public void Parse_BadHeader_SaysWhatIsWrong(string header, string message)
    {
        Fails(DatasetFormat.Npy, [Source("x.npy", Npy("", [], [1], header: header))], "x.npy: ", message);
    }

    [Fact]
    public void Parse_Truncated_NamesDeclaredAndActualSizes()
    {
        var file = NpyF32([2, 2], 1, 2, 3, 4);

        Fails(DatasetFormat.Npy, [Source("x.npy", file[..^4])], "x.npy: truncated: the header declares shape (2, 2) of '<f4' (144 bytes with the header) but the file has 140 bytes");
    }

    [Fact]
    public void Parse_TrailingData_SaysSo()
    {
        byte[] file = [.. NpyI64(1), 0];

        Fails(DatasetFormat.Npy, [Source("y.npy", file)], "y.npy: trailing data: the header declares shape (1,) of '<i8' (136 bytes with the header) but the file has 137 bytes");
    }

    [Theory]
    [InlineData("train.npy")]
    [InlineData("x_y_train.npy")]
    public void Parse_NameWithoutOneRole_SaysHowToName(string name)
    {
        Fails(DatasetFormat.Npy, [Source(name, NpyI64(1))], $"{name}: cannot tell from the name whether the file holds features or labels; name features like x_train.npy");
    }

    [Fact]
    public void Parse_FloatLabels_SaysLabelsMustBeIntegers()
    {
        Fails(DatasetFormat.Npy, [Source("x.npy", NpyU8([1, 1], [0])), Source("y.npy", NpyF32([1], 1))], "y.npy: labels must be integers");
    }

    [Fact]
    public void Parse_LabelsOfRank2_SaysShape()
    {
        Fails(DatasetFormat.Npy, [Source("x.npy", NpyU8([1, 1], [0])), Source("y.npy", Npy("|u1", [1, 2], [0, 1]))], "y.npy: labels must have shape (N,) or (N, 1), not (1, 2)");
    }

    [Fact]
    public void Parse_FeaturesOfRank1_SaysShape()
    {
        Fails(DatasetFormat.Npy, [Source("x.npy", NpyU8([3], [0, 1, 2])), Source("y.npy", NpyI64(0, 1, 2))], "x.npy: features must have a shape (examples, ...) of at least two dimensions, not (3,)");
    }

    [Fact]
    public void Parse_CountMismatch_SaysShapeMismatch()
    {
        Fails(DatasetFormat.Npy, [Source("x_train.npy", NpyU8([2, 1], [0, 1])), Source("y_train.npy", NpyI64(0))], "x_train.npy: shape mismatch: x_train.npy has 2 examples but y_train.npy has 1 labels");
    }

    [Fact]
    public void Parse_SameRoleTwice_NamesBothFiles()
    {
        Fails(DatasetFormat.Npy, [Source("x_train.npy", NpyU8([1, 1], [0])), Source("train_x.npy", NpyU8([1, 1], [0]))], "train_x.npy: two files give the train features: x_train.npy and train_x.npy");
    }

    [Fact]
    public void Parse_SplitsWithDifferentDtypes_SaysTypeMismatch()
    {
        Fails(
            DatasetFormat.Npy,
            [Source("x_train.npy", NpyU8([1, 1], [0])), Source("y_train.npy", NpyI64(0)), Source("x_test.npy", NpyF32([1, 1], 0)), Source("y_test.npy", NpyI64(0))],
            "x_test.npy: type mismatch: test features are f32 but train features (x_train.npy) are u8");
    }

    [Fact]
    public void Parse_NegativeLabel_NamesValueAndIndex()
    {
        Fails(DatasetFormat.Npy, [Source("x.npy", NpyU8([2, 1], [0, 0])), Source("y.npy", NpyI64(0, -3))], "y.npy: label -3 at index 1 is negative");
    }

    [Fact]
    public void Parse_HugeUnsignedLabel_SaysTooLarge()
    {
        var payload = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, ulong.MaxValue);

        Fails(DatasetFormat.Npy, [Source("x.npy", NpyU8([1, 1], [0])), Source("y.npy", Npy("<u8", [1], payload))], "y.npy: label 18446744073709551615 at index 0 is too large");
    }
}

public sealed class NpzParserTests
{
    [Theory]
    [InlineData(CompressionLevel.NoCompression, false)]
    [InlineData(CompressionLevel.Optimal, false)]
    [InlineData(CompressionLevel.Optimal, true)]
    public void Parse_KerasArchive_GivesTrainAndTest(CompressionLevel level, bool gzip)
    {
        var archive = Npz(
            level,
            ("x_train.npy", NpyU8([3, 2, 2], Pattern(12))),
            ("y_train.npy", NpyI64(0, 1, 2)),
            ("x_test.npy", NpyU8([2, 2, 2], Pattern(8, seed: 1))),
            ("y_test.npy", NpyI64(3, 0)));

        var dataset = Parse(DatasetFormat.Npz, Source("mnist.npz", gzip ? Gzip(archive) : archive));

        Assert.Equal(["train", "test"], dataset.Splits.Keys);
        Assert.Equal(Pattern(12), dataset.Splits["train"].Data);
        Assert.Equal(Pattern(8, seed: 1), dataset.Splits["test"].Data);
        Assert.Equal([3L, 0], dataset.Splits["test"].Labels!);
        Assert.Equal(4, dataset.Splits["train"].Classes);
    }

    [Fact]
    public void Parse_EntriesXAndY_TakeTheArchiveSplit()
    {
        var train = Npz(CompressionLevel.Fastest, ("x.npy", NpyU8([1, 1], [1])), ("y.npy", NpyI64(0)));
        var test = Npz(CompressionLevel.Fastest, ("x.npy", NpyU8([1, 1], [2])), ("y.npy", NpyI64(1)));

        var dataset = Parse(DatasetFormat.Npz, Source("data.npz", train), Source("data_test.npz", test));

        Assert.Equal([1], dataset.Splits["train"].Data);
        Assert.Equal([2], dataset.Splits["test"].Data);
    }

    [Fact]
    public void Parse_NotAZip_SaysNotAnNpz()
    {
        Fails(DatasetFormat.Npz, [Source("data.npz", NpyI64(1))], "data.npz: not an .npz file: it is not a zip archive");
    }

    [Fact]
    public void Parse_EmptyArchive_SaysNoArrays()
    {
        Fails(DatasetFormat.Npz, [Source("data.npz", Npz(CompressionLevel.Fastest))], "data.npz: the archive holds no arrays");
    }

    [Fact]
    public void Parse_EntryWithoutRole_NamesEntry()
    {
        Fails(DatasetFormat.Npz, [Source("data.npz", Npz(CompressionLevel.Fastest, ("arr_0.npy", NpyI64(1))))], "data.npz:arr_0.npy: cannot tell whether the entry holds features or labels");
    }

    [Fact]
    public void Parse_BadEntry_NamesArchiveAndEntry()
    {
        var archive = Npz(CompressionLevel.Fastest, ("x_train.npy", NpyU8([2, 1], [1, 2])[..^1]), ("y_train.npy", NpyI64(0, 1)));

        Fails(DatasetFormat.Npz, [Source("data.npz", archive)], "data.npz:x_train.npy: truncated");
    }

    [Fact]
    public void Parse_ZipBomb_StopsAtTheLimit()
    {
        var archive = Npz(CompressionLevel.Optimal, ("x_train.npy", NpyU8([1 << 20, 1], new byte[1 << 20])), ("y_train.npy", NpyI64(0)));
        var options = new DatasetParseOptions { MaxDecompressedBytes = 64 * 1024 };

        Fails(DatasetFormat.Npz, options, [Source("data.npz", archive)], "data.npz:x_train.npy: decompresses to more than 65536 bytes");
    }
}

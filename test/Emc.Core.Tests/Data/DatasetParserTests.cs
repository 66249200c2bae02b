using Emc.Core.Data;
using static Emc.Core.Tests.Data.DataFiles;

namespace Emc.Core.Tests.Data;

public sealed class DatasetParserTests
{
    [Theory]
    [InlineData("train-images-idx3-ubyte.gz", "train")]
    [InlineData("t10k-images-idx3-ubyte.gz", "test")]
    [InlineData("x_test.npy", "test")]
    [InlineData("mnist_TEST.csv", "test")]
    [InlineData("testing.txt", "test")]
    [InlineData("x_val.npy", "validation")]
    [InlineData("valid.txt", "validation")]
    [InlineData("data/validation_set.csv", "validation")]
    [InlineData("interval.csv", "train")]
    [InlineData("values.csv", "train")]
    [InlineData("test/train.csv", "train")]
    [InlineData("corpus.txt", "train")]
    public void FromFileName_Names_PickSplit(string name, string split)
    {
        Assert.Equal(split, DatasetSplits.FromFileName(name));
    }

    [Theory]
    [InlineData("idx", DatasetFormat.Idx)]
    [InlineData("NPY", DatasetFormat.Npy)]
    [InlineData("npz", DatasetFormat.Npz)]
    [InlineData("csv", DatasetFormat.Csv)]
    [InlineData("text", DatasetFormat.Text)]
    public void DatasetFormats_CliSpelling_RoundTrips(string text, DatasetFormat format)
    {
        Assert.Equal(format, DatasetFormats.Parse(text));
        Assert.Equal(text.ToLowerInvariant(), DatasetFormats.ToText(format));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("parquet")]
    public void DatasetFormats_Unknown_IsRefused(string? text)
    {
        Assert.False(DatasetFormats.TryParse(text, out _));
        Assert.Throws<ArgumentException>(() => DatasetFormats.Parse(text!));
    }

    [Fact]
    public void Parse_NoFiles_SaysNoFiles()
    {
        var ex = Assert.Throws<DatasetFormatException>(() => DatasetParser.Parse([], DatasetFormat.Idx, new DatasetParseOptions()));

        Assert.Contains("no files", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_Error_CarriesFileName()
    {
        var ex = Fails(DatasetFormat.Idx, [Source("junk.bin", [1, 2, 3, 4, 5])], "junk.bin: not an IDX file");

        Assert.Equal("junk.bin", ex.FileName);
    }

    [Fact]
    public void Parse_StatedClasses_SetsClassesOfEverySplit()
    {
        var options = new DatasetParseOptions { Classes = 10 };

        var dataset = Parse(DatasetFormat.Idx, options, Source("train-images", IdxImages(2, 1, 1)), Source("train-labels", IdxLabels(0, 1)));

        Assert.Equal(10, dataset.Splits["train"].Classes);
    }

    [Fact]
    public void Parse_LabelAtStatedClasses_NamesValueAndIndex()
    {
        var options = new DatasetParseOptions { Classes = 10 };

        Fails(
            DatasetFormat.Idx,
            options,
            [Source("train-images", IdxImages(2, 1, 1)), Source("train-labels", IdxLabels(0, 1)), Source("t10k-images", IdxImages(3, 1, 1)), Source("t10k-labels", IdxLabels(9, 3, 10))],
            "t10k-labels: label 10 at index 2 is out of range: with 10 classes labels must be in [0, 10)");
    }

    [Fact]
    public void Parse_ClassesDifferAcrossSplits_UsesTheMaximum()
    {
        var dataset = Parse(
            DatasetFormat.Idx,
            Source("train-images", IdxImages(2, 1, 1)),
            Source("train-labels", IdxLabels(0, 1)),
            Source("t10k-images", IdxImages(1, 1, 1)),
            Source("t10k-labels", IdxLabels(7)));

        Assert.Equal(8, dataset.Splits["train"].Classes);
        Assert.Equal(8, dataset.Splits["test"].Classes);
    }

    [Fact]
    public void Parse_TooManyClasses_NamesLabel()
    {
        Fails(
            DatasetFormat.Npy,
            [Source("x.npy", NpyU8([2, 1], [0, 0])), Source("y.npy", NpyI64(5, 100_000))],
            "y.npy: label 100000 at index 1 means at least 100001 classes, more than the limit of 100000");
    }

    [Fact]
    public void Parse_GzipBomb_StopsAtTheLimit()
    {
        var bomb = Gzip(new byte[4 << 20]);
        var options = new DatasetParseOptions { MaxDecompressedBytes = 1 << 20 };

        Fails(DatasetFormat.Text, options, [Source("corpus.txt.gz", bomb)], "corpus.txt.gz: decompresses to more than 1048576 bytes, the limit for one file");
    }

    [Fact]
    public void Parse_GzipBombInIdxPayload_StopsAtTheLimit()
    {
        var bomb = Gzip(IdxImages(4096, 32, 32));
        var options = new DatasetParseOptions { MaxDecompressedBytes = 1 << 20 };

        Fails(DatasetFormat.Idx, options, [Source("train-images.gz", bomb)], "train-images.gz: decompresses to more than 1048576 bytes");
    }

    [Fact]
    public void Parse_CorruptGzip_SaysCorrupt()
    {
        var file = Gzip(Utf8(new string('a', 10_000) + "some more text that varies 1234567890"));
        file[20] ^= 0xFF;
        file[21] ^= 0xFF;

        Fails(DatasetFormat.Text, [Source("a.txt.gz", file)], "a.txt.gz: corrupt compressed data");
    }

    [Fact]
    public void Parse_BadOptions_ThrowsArgumentException()
    {
        var files = new[] { Source("a.txt", Utf8("a")) };

        Assert.Throws<ArgumentOutOfRangeException>(() => DatasetParser.Parse(files, DatasetFormat.Text, new DatasetParseOptions { Classes = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => DatasetParser.Parse(files, DatasetFormat.Text, new DatasetParseOptions { Classes = 100_001 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => DatasetParser.Parse(files, DatasetFormat.Text, new DatasetParseOptions { MaxDecompressedBytes = 0 }));
        Assert.Throws<ArgumentException>(() => DatasetParser.Parse(files, DatasetFormat.Text, new DatasetParseOptions { LabelColumn = " " }));
    }
}

public sealed class MalformedGzipTests
{
    public static TheoryData<byte[]> Files()
    {
        var whole = DataFiles.Gzip(DataFiles.IdxImages(50, 8, 8));
        return new TheoryData<byte[]>
        {
            new byte[] { 0x1f, 0x8b },
            new byte[] { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3 },
            new byte[] { 0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18 },
            whole[..(whole.Length / 2)],
            whole[..^4],
        };
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Parse_MalformedGzip_ThrowsDatasetFormatException(byte[] content)
    {
        foreach (var format in Enum.GetValues<DatasetFormat>())
        {
            var ex = Assert.Throws<DatasetFormatException>(() => DataFiles.Parse(format, DataFiles.Source("x_train-images.gz", content)));
            Assert.StartsWith("x_train-images.gz: ", ex.Message, StringComparison.Ordinal);
        }
    }
}

public sealed class GzipTests
{
    private static byte[] ReadAll(byte[] gzip)
    {
        using var reader = new GzipReader(gzip);
        using var output = new MemoryStream();
        reader.CopyTo(output);
        return output.ToArray();
    }

    [Fact]
    public void Crc32_CheckValue_IsCbf43926()
    {
        Assert.Equal(0xCBF43926u, Crc32.Update(0, "123456789"u8));
    }

    [Fact]
    public void Read_ConcatenatedMembers_GivesBothTexts()
    {
        byte[] joined = [.. DataFiles.Gzip(DataFiles.Utf8("hello ")), .. DataFiles.Gzip(DataFiles.Utf8("world"))];

        Assert.Equal(DataFiles.Utf8("hello world"), ReadAll(joined));
    }

    [Fact]
    public void Read_HeaderWithFileNameAndComment_SkipsThem()
    {
        var plain = DataFiles.Gzip(DataFiles.Utf8("text"));
        byte[] named = [.. plain[..3], 0x18, .. plain[4..10], .. "a.txt\0"u8, .. "note\0"u8, .. plain[10..]];

        Assert.Equal(DataFiles.Utf8("text"), ReadAll(named));
    }

    [Fact]
    public void Read_LargeData_RoundTrips()
    {
        var data = DataFiles.Pattern(3_000_000, seed: 5);

        Assert.Equal(data, ReadAll(DataFiles.Gzip(data)));
    }

    [Fact]
    public void Read_TrailingGarbage_Throws()
    {
        byte[] file = [.. DataFiles.Gzip(DataFiles.Utf8("text")), 1, 2, 3];

        var ex = Assert.Throws<InvalidDataException>(() => ReadAll(file));
        Assert.Contains("3 bytes of trailing data", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_WrongCrc_Throws()
    {
        var file = DataFiles.Gzip(DataFiles.Utf8("text"));
        file[^8] ^= 1;

        Assert.Throws<InvalidDataException>(() => ReadAll(file));
    }

    [Fact]
    public void Parse_TruncatedGzipText_SaysTruncated()
    {
        var file = DataFiles.Gzip(DataFiles.Pattern(100_000));

        DataFiles.Fails(DatasetFormat.Text, [DataFiles.Source("corpus.txt.gz", file[..^20])], "corpus.txt.gz: corrupt compressed data: the gzip data is truncated");
    }
}

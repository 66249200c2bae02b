using System.Buffers.Binary;
using Emc.Core.Data;
using static Emc.Core.Tests.Data.DataFiles;

namespace Emc.Core.Tests.Data;

public sealed class IdxParserTests
{
    private static DatasetSource[] Mnist(int train = 5, int test = 3, bool gzip = false)
    {
        byte[] Maybe(byte[] content) => gzip ? Gzip(content) : content;
        var trainLabels = Enumerable.Range(0, train).Select(i => (byte)(i % 10)).ToArray();
        var testLabels = Enumerable.Range(0, test).Select(i => (byte)((i + 3) % 10)).ToArray();
        return
        [
            Source("train-images-idx3-ubyte" + (gzip ? ".gz" : ""), Maybe(IdxImages(train, 4, 3))),
            Source("train-labels-idx1-ubyte" + (gzip ? ".gz" : ""), Maybe(IdxLabels(trainLabels))),
            Source("t10k-images-idx3-ubyte" + (gzip ? ".gz" : ""), Maybe(IdxImages(test, 4, 3, seed: 7))),
            Source("t10k-labels-idx1-ubyte" + (gzip ? ".gz" : ""), Maybe(IdxLabels(testLabels))),
        ];
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Parse_MnistLayout_GivesTrainAndTestSplits(bool gzip)
    {
        var dataset = Parse(DatasetFormat.Idx, Mnist(gzip: gzip));

        Assert.Equal(DatasetTask.Classification, dataset.Task);
        Assert.Equal(["train", "test"], dataset.Splits.Keys);
        var train = dataset.Splits["train"];
        Assert.Equal(ElementType.U8, train.ElementType);
        Assert.Equal([4, 3], train.SampleShape);
        Assert.Equal(5, train.Count);
        Assert.Equal(Pattern(5 * 12), train.Data);
        Assert.Equal([0L, 1, 2, 3, 4], train.Labels!);
        Assert.Equal(6, train.Classes);
        var test = dataset.Splits["test"];
        Assert.Equal(3, test.Count);
        Assert.Equal(Pattern(3 * 12, seed: 7), test.Data);
        Assert.Equal([3L, 4, 5], test.Labels!);
        Assert.Equal(6, test.Classes);
    }

    [Fact]
    public void Parse_Float32Features_ConvertsFromBigEndian()
    {
        var payload = new byte[2 * 2 * 4];
        float[] values = [1.5f, -2f, 0.25f, 1e6f];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleBigEndian(payload.AsSpan(4 * i), values[i]);
        }

        var dataset = Parse(
            DatasetFormat.Idx,
            Source("images.idx", Idx(IdxF32, [2, 2], payload)),
            Source("labels.idx", IdxLabels(1, 0)));

        var train = dataset.Splits["train"];
        Assert.Equal(ElementType.F32, train.ElementType);
        Assert.Equal([2], train.SampleShape);
        Assert.Equal(values, Floats(train.Data));
    }

    [Theory]
    [InlineData(IdxI8, new byte[] { 0xFF, 0x02 }, new float[] { -1, 2 })]
    [InlineData(IdxI16, new byte[] { 0xFF, 0xFE, 0x01, 0x00 }, new float[] { -2, 256 })]
    [InlineData(IdxI32, new byte[] { 0, 0, 1, 0, 0xFF, 0xFF, 0xFF, 0xFF }, new float[] { 256, -1 })]
    [InlineData(IdxF64, new byte[] { 0x3F, 0xF8, 0, 0, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0 }, new float[] { 1.5f, -2 })]
    public void Parse_WideFeatureTypes_ConvertToF32(byte type, byte[] payload, float[] expected)
    {
        var dataset = Parse(
            DatasetFormat.Idx,
            Source("images.idx", Idx(type, [2, 1], payload)),
            Source("labels.idx", IdxLabels(0, 1)));

        Assert.Equal(ElementType.F32, dataset.Splits["train"].ElementType);
        Assert.Equal(expected, Floats(dataset.Splits["train"].Data));
    }

    [Fact]
    public void Parse_Int32Labels_ReadsBigEndian()
    {
        var labels = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(labels, 300);
        BinaryPrimitives.WriteInt32BigEndian(labels.AsSpan(4), 2);

        var dataset = Parse(DatasetFormat.Idx, Source("images", IdxImages(2, 2, 2)), Source("labels", Idx(IdxI32, [2], labels)));

        Assert.Equal([300L, 2], dataset.Splits["train"].Labels!);
        Assert.Equal(301, dataset.Splits["train"].Classes);
    }

    [Fact]
    public void Parse_WrongMagic_SaysNotAnIdxFile()
    {
        var file = IdxLabels(1, 2);
        file[0] = 0x50;

        Fails(DatasetFormat.Idx, [Source("train-images", IdxImages(2, 2, 2)), Source("labels.bin", file)], "labels.bin: not an IDX file (magic 0x50000801");
    }

    [Fact]
    public void Parse_UnknownIdxType_SaysNotAnIdxFile()
    {
        Fails(DatasetFormat.Idx, [Source("labels.bin", Idx(0x0A, [2], [1, 2]))], "labels.bin: not an IDX file (magic 0x00000a01");
    }

    [Fact]
    public void Parse_TooShortForMagic_SaysNotAnIdxFile()
    {
        Fails(DatasetFormat.Idx, [Source("x.idx", [0, 0])], "x.idx: not an IDX file: it has only 2 bytes");
    }

    [Fact]
    public void Parse_TruncatedLabels_NamesDeclaredAndActualSizes()
    {
        var full = IdxLabels(new byte[60000]);
        var truncated = full.AsSpan(0, 30000).ToArray();

        Fails(
            DatasetFormat.Idx,
            [Source("train-labels-idx1-ubyte.gz", Gzip(truncated))],
            "train-labels-idx1-ubyte.gz: truncated: the header declares 60000 items (60008 bytes) but the file has 30000 bytes");
    }

    [Fact]
    public void Parse_TruncatedImagesUncompressed_NamesShapeAndSizes()
    {
        var full = IdxImages(10, 4, 4);

        Fails(
            DatasetFormat.Idx,
            [Source("train-images", full[..100])],
            "train-images: truncated: the header declares 10 items of [4, 4] (176 bytes) but the file has 100 bytes");
    }

    [Fact]
    public void Parse_TruncatedDimensions_SaysTruncated()
    {
        var full = IdxImages(10, 4, 4);

        Fails(DatasetFormat.Idx, [Source("train-images", full[..10])], "train-images: truncated: the header declares 3 dimensions (16 bytes) but the file has 10 bytes");
    }

    [Fact]
    public void Parse_TrailingGarbage_SaysTrailingData()
    {
        byte[] file = [.. IdxLabels(1, 2, 3), 0xAA, 0xBB];

        Fails(
            DatasetFormat.Idx,
            [Source("train-images", IdxImages(3, 2, 2)), Source("train-labels", file)],
            "train-labels: trailing data: the header declares 3 items (11 bytes) but the file has 13 bytes");
    }

    [Fact]
    public void Parse_CountMismatch_SaysShapeMismatch()
    {
        Fails(
            DatasetFormat.Idx,
            [Source("train-images-idx3-ubyte", IdxImages(4, 2, 2)), Source("train-labels-idx1-ubyte", IdxLabels(1, 2, 3))],
            "shape mismatch: train-images-idx3-ubyte has 4 images but train-labels-idx1-ubyte has 3 labels");
    }

    [Fact]
    public void Parse_FloatLabels_SaysLabelsMustBeIntegers()
    {
        Fails(
            DatasetFormat.Idx,
            [Source("train-images", IdxImages(1, 2, 2)), Source("train-labels", Idx(IdxF32, [1], new byte[4]))],
            "train-labels: labels must be integers");
    }

    [Fact]
    public void Parse_NegativeLabel_NamesValueAndIndex()
    {
        Fails(
            DatasetFormat.Idx,
            [Source("train-images", IdxImages(3, 2, 2)), Source("train-labels", Idx(IdxI8, [3], [0, 1, 0xFF]))],
            "train-labels: label -1 at index 2 is negative");
    }

    [Fact]
    public void Parse_ZeroItems_SaysNoExamples()
    {
        Fails(DatasetFormat.Idx, [Source("train-images", Idx(IdxU8, [0, 2, 2], []))], "train-images: the array holds no examples");
    }

    [Fact]
    public void Parse_HugeDeclaredShape_FailsWithoutAllocating()
    {
        Fails(DatasetFormat.Idx, [Source("train-images", Idx(IdxU8, [60000, 60000, 60000], []))], "train-images: the shape [60000, 60000, 60000] has more elements than one array can hold");
    }

    [Fact]
    public void Parse_GzipDeclaringGigabytes_FailsAsTruncated()
    {
        // A small gzip whose header declares 2 GB of pixels: the reader must not allocate them up front.
        var file = Gzip(Idx(IdxU8, [2_000_000, 1000], new byte[1000]));

        Fails(DatasetFormat.Idx, [Source("train-images.gz", file)], "train-images.gz: truncated: the header declares 2000000 items of [1000]", "but the file has 1012 bytes");
    }

    [Fact]
    public void Parse_MissingLabelsFile_SaysSplitHasNoLabels()
    {
        Fails(DatasetFormat.Idx, [Source("train-images", IdxImages(2, 2, 2))], "train-images: the train split has features but no labels");
    }

    [Fact]
    public void Parse_MissingImagesFile_SaysSplitHasNoFeatures()
    {
        Fails(DatasetFormat.Idx, [Source("t10k-labels", IdxLabels(1))], "t10k-labels: the test split has labels but no features");
    }

    [Fact]
    public void Parse_TwoLabelFilesForOneSplit_NamesBoth()
    {
        Fails(
            DatasetFormat.Idx,
            [Source("train-images", IdxImages(2, 2, 2)), Source("train-labels", IdxLabels(1, 2)), Source("more-labels", IdxLabels(1, 2))],
            "more-labels: two files give the train labels: train-labels and more-labels");
    }

    [Fact]
    public void Parse_SplitsWithDifferentShapes_SaysShapeMismatch()
    {
        Fails(
            DatasetFormat.Idx,
            [
                Source("train-images", IdxImages(2, 2, 2)), Source("train-labels", IdxLabels(1, 2)),
                Source("test-images", IdxImages(2, 3, 3)), Source("test-labels", IdxLabels(1, 2)),
            ],
            "test-images: shape mismatch: test examples have shape [3, 3] but train examples (train-images) have [2, 2]");
    }
}

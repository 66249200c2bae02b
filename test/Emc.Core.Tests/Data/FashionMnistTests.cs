using Emc.Core.Data;

namespace Emc.Core.Tests.Data;

public sealed class FashionMnistTests
{
    private const string Directory = "/usr/share/datasets/fashion-mnist";

    [Fact]
    public void Parse_RealFashionMnist_GivesTrainAndTest()
    {
        if (!System.IO.Directory.Exists(Directory))
        {
            return;
        }

        var files = System.IO.Directory.GetFiles(Directory, "*-ubyte.gz")
            .Select(path => new DatasetSource(Path.GetFileName(path), File.ReadAllBytes(path)))
            .ToList();

        var dataset = DatasetParser.Parse(files, DatasetFormat.Idx, new DatasetParseOptions());

        Assert.Equal(DatasetTask.Classification, dataset.Task);
        var train = dataset.Splits["train"];
        Assert.Equal(60000, train.Count);
        Assert.Equal([28, 28], train.SampleShape);
        Assert.Equal(ElementType.U8, train.ElementType);
        Assert.Equal(60000 * 784, train.Data.Length);
        Assert.Equal(10, train.Classes);
        Assert.Equal(9, train.Labels![0]);
        var test = dataset.Splits["test"];
        Assert.Equal(10000, test.Count);
        Assert.Equal(10, test.Classes);

        var shards = DatasetSharder.Shard(train);
        Assert.Equal(12, shards.Count);
        var first = ShardCodec.Decode(shards[0].Bytes);
        Assert.Equal(9, first.Labels![0]);
        Assert.Equal(train.Data.AsSpan(0, first.Data.Length).ToArray(), first.Data);
    }
}

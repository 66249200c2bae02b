using System.Security.Cryptography;
using System.Text.Json;
using Emc.Core.Data;

namespace Emc.Core.Tests.Data;

public sealed class DatasetSharderTests
{
    [Fact]
    public void Shard_SmallTarget_BalancesWholeExamples()
    {
        var split = ShardCodecTests.ImageSplit(10);

        // 14 bytes per example (6 pixels + an 8-byte label): 40 bytes fit 2 examples, so 5 shards of 2.
        var shards = DatasetSharder.Shard(split, targetShardBytes: 40);

        Assert.Equal([(0, 2), (2, 2), (4, 2), (6, 2), (8, 2)], shards.Select(shard => (shard.First, shard.Count)));
    }

    [Fact]
    public void Plan_UnevenCount_DiffersByAtMostOne()
    {
        var ranges = DatasetSharder.Plan(ShardCodecTests.TextSplit(10), targetShardBytes: 4);

        Assert.Equal([new ShardRange(0, 4), new ShardRange(4, 3), new ShardRange(7, 3)], ranges);
    }

    [Fact]
    public void Plan_TargetSmallerThanAnExample_PutsOneExamplePerShard()
    {
        var ranges = DatasetSharder.Plan(ShardCodecTests.ImageSplit(3), targetShardBytes: 1);

        Assert.Equal(3, ranges.Count);
        Assert.All(ranges, range => Assert.Equal(1, range.Count));
    }

    [Fact]
    public void Shard_DefaultTarget_OneShardForSmallSplit()
    {
        var shards = DatasetSharder.Shard(ShardCodecTests.ImageSplit(10));

        Assert.Single(shards);
    }

    [Fact]
    public void Shard_Blobs_DecodeBackToTheSplitAndHashTheirBytes()
    {
        var split = ShardCodecTests.TextSplit(1000);

        var shards = DatasetSharder.Shard(split, targetShardBytes: 300);

        Assert.Equal(split.Data, shards.SelectMany(shard => ShardCodec.Decode(shard.Bytes).Data).ToArray());
        Assert.All(shards, shard => Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(shard.Bytes)), shard.Sha256));
        Assert.All(shards, shard => Assert.Matches("^[0-9a-f]{64}$", shard.Sha256));
    }

    [Fact]
    public void Plan_NonPositiveTarget_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => DatasetSharder.Plan(ShardCodecTests.TextSplit(), 0));
    }
}

public sealed class DatasetManifestTests
{
    private static ParsedDataset Dataset() => new()
    {
        Task = DatasetTask.Classification,
        Splits = new Dictionary<string, ParsedSplit> { ["train"] = ShardCodecTests.ImageSplit(10), ["test"] = ShardCodecTests.ImageSplit(3) },
    };

    private static SplitManifest TrainManifest()
    {
        var dataset = Dataset();
        var manifest = DatasetManifests.Create("toy", DatasetFormat.Idx, dataset, DatasetSharder.ShardAll(dataset, targetShardBytes: 40));
        return manifest.Splits["train"];
    }

    [Fact]
    public void Create_ShardedDataset_DescribesSplitsAndShards()
    {
        var dataset = Dataset();
        var shards = DatasetSharder.ShardAll(dataset, targetShardBytes: 40);

        var manifest = DatasetManifests.Create("toy", DatasetFormat.Idx, dataset, shards);

        Assert.Equal("toy", manifest.Name);
        Assert.Equal("idx", manifest.Format);
        Assert.Equal(DatasetTask.Classification, manifest.Task);
        var train = manifest.Splits["train"];
        Assert.Equal(10, train.Count);
        Assert.Equal([2, 3], train.SampleShape);
        Assert.Equal(ElementType.U8, train.ElementType);
        Assert.Equal(4, train.Classes);
        Assert.Equal(5, train.Shards.Count);
        Assert.Equal(shards["train"].Sum(shard => (long)shard.Bytes.Length), train.Bytes);
        Assert.Equal(shards["train"].Select(shard => shard.Sha256), train.Shards.Select(shard => shard.Sha256));
    }

    [Fact]
    public void Create_MissingShards_Throws()
    {
        var dataset = Dataset();
        var shards = new Dictionary<string, IReadOnlyList<ShardBlob>> { ["train"] = DatasetSharder.Shard(dataset.Splits["train"]) };

        Assert.Throws<ArgumentException>(() => DatasetManifests.Create("toy", DatasetFormat.Idx, dataset, shards));
    }

    [Fact]
    public void Create_ShardsWithAGap_Throws()
    {
        var dataset = Dataset();
        var train = DatasetSharder.Shard(dataset.Splits["train"], 40);
        var shards = new Dictionary<string, IReadOnlyList<ShardBlob>>
        {
            ["train"] = [.. train.Where((_, index) => index != 2)],
            ["test"] = DatasetSharder.Shard(dataset.Splits["test"]),
        };

        var ex = Assert.Throws<ArgumentException>(() => DatasetManifests.Create("toy", DatasetFormat.Idx, dataset, shards));
        Assert.Contains("train", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_Manifest_RoundTrips()
    {
        var dataset = Dataset();
        var manifest = DatasetManifests.Create("toy", DatasetFormat.Npz, dataset, DatasetSharder.ShardAll(dataset, 40));

        var json = JsonSerializer.Serialize(manifest, EmcJson.Options);
        var back = JsonSerializer.Deserialize<DatasetManifest>(json, EmcJson.Options)!;

        Assert.Contains("\"elementType\":\"u8\"", json, StringComparison.Ordinal);
        Assert.Contains("\"task\":\"classification\"", json, StringComparison.Ordinal);
        Assert.Equal(manifest.Splits["train"].Shards, back.Splits["train"].Shards);
        Assert.Equal(manifest.Splits["train"].SampleShape, back.Splits["train"].SampleShape);
        Assert.Equal(manifest.Splits["test"].Bytes, back.Splits["test"].Bytes);
        back.Splits["train"].Validate();
    }

    [Theory]
    [InlineData(0, 1, new[] { 0 })]
    [InlineData(0, 2, new[] { 0 })]
    [InlineData(1, 2, new[] { 0, 2 })]
    [InlineData(3, 4, new[] { 2, 4, 6 })]
    [InlineData(9, 1, new[] { 8 })]
    [InlineData(0, 10, new[] { 0, 2, 4, 6, 8 })]
    public void ShardsFor_Range_GivesCoveringShards(long first, long count, int[] expectedFirsts)
    {
        var shards = TrainManifest().ShardsFor(first, count);

        Assert.Equal(expectedFirsts, shards.Select(shard => shard.First));
    }

    [Fact]
    public void ShardsFor_EmptyRange_GivesNone()
    {
        Assert.Empty(TrainManifest().ShardsFor(4, 0));
    }

    [Theory]
    [InlineData(-1, 1)]
    [InlineData(0, -1)]
    [InlineData(5, 6)]
    [InlineData(10, 1)]
    public void ShardsFor_OutsideSplit_Throws(long first, long count)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => TrainManifest().ShardsFor(first, count));
    }

    [Fact]
    public void Validate_BytesThatDoNotAddUp_Throws()
    {
        var manifest = TrainManifest() with { Bytes = 1 };

        Assert.Throws<InvalidDataException>(manifest.Validate);
    }
}

using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.InteropServices;
using Emc.Compute.Training;
using Emc.Core.Data;
using Emc.Core.Training;

namespace Emc.Compute.Tests.Training;

/// <summary>Small data sets and models for the training tests.</summary>
internal static class TrainingData
{
    public const string FashionMnistDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>Gaussian blobs around one random centre per class: an easy problem an mlp learns in a few dozen steps.</summary>
    public static ExampleBlock Blobs(int count, int features, int classes, int seed)
    {
        var random = new Random(seed);
        var centres = new float[classes, features];
        for (var c = 0; c < classes; c++)
        {
            for (var f = 0; f < features; f++)
            {
                centres[c, f] = (float)(random.NextDouble() * 4 - 2);
            }
        }

        var values = new float[count * features];
        var labels = new long[count];
        for (var i = 0; i < count; i++)
        {
            var label = random.Next(classes);
            labels[i] = label;
            for (var f = 0; f < features; f++)
            {
                values[(i * features) + f] = centres[label, f] + (float)(random.NextDouble() - 0.5);
            }
        }

        return new ExampleBlock
        {
            Count = count,
            SampleShape = [features],
            ElementType = ElementType.F32,
            Data = MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
            Labels = labels,
        };
    }

    /// <summary>Random U8 images with random labels.</summary>
    public static ExampleBlock Images(int count, int[] shape, int classes, int seed)
    {
        var random = new Random(seed);
        var elements = shape.Aggregate(1, (p, d) => p * d);
        var data = new byte[count * elements];
        random.NextBytes(data);
        return new ExampleBlock
        {
            Count = count,
            SampleShape = shape,
            ElementType = ElementType.U8,
            Data = data,
            Labels = [.. Enumerable.Range(0, count).Select(_ => (long)random.Next(classes))],
        };
    }

    /// <summary>A text split: <paramref name="text"/> as bytes.</summary>
    public static ExampleBlock Text(string text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        return new ExampleBlock { Count = bytes.Length, SampleShape = [], ElementType = ElementType.U8, Data = bytes };
    }

    /// <summary>Consecutive batches of <paramref name="size"/> indices from <paramref name="first"/>.</summary>
    public static long[][] Consecutive(int steps, int size, long first = 0) =>
        [.. Enumerable.Range(0, steps).Select(s => Enumerable.Range(0, size).Select(i => first + ((long)s * size) + i).ToArray())];

    /// <summary>The first <paramref name="count"/> examples of a Fashion-MNIST split, read from the gzipped IDX files.</summary>
    public static ExampleBlock FashionMnist(string split, int count)
    {
        var images = ReadIdx(Path.Combine(FashionMnistDirectory, $"{split}-images-idx3-ubyte.gz"), 2051, count, out var dims);
        var labels = ReadIdx(Path.Combine(FashionMnistDirectory, $"{split}-labels-idx1-ubyte.gz"), 2049, count, out _);
        return new ExampleBlock
        {
            Count = count,
            SampleShape = dims,
            ElementType = ElementType.U8,
            Data = images,
            Labels = [.. labels.Select(b => (long)b)],
        };
    }

    public static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream));
    }

    public static TrainableModel SmallMlp(long seed = 7, double dropout = 0) =>
        TrainableModel.Create(new ModelSpec { Name = ModelSpec.Mlp, Hidden = [32, 16], Dropout = dropout }, [20], 5, false, "cpu", seed);

    /// <summary>An IDX file: magic (big-endian, 0x08 = unsigned byte, then the rank), the dimensions, the bytes.</summary>
    private static byte[] ReadIdx(string path, int magic, int count, out int[] sampleShape)
    {
        using var file = File.OpenRead(path);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        var header = new byte[4];
        gzip.ReadExactly(header);
        Assert.Equal(magic, BinaryPrimitives.ReadInt32BigEndian(header));
        var rank = header[3];
        var dims = new int[rank];
        for (var i = 0; i < rank; i++)
        {
            gzip.ReadExactly(header);
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(header);
        }

        Assert.True(count <= dims[0], $"{path} holds {dims[0]} examples, not {count}");
        sampleShape = dims[1..];
        var data = new byte[count * sampleShape.Aggregate(1, (p, d) => p * d)];
        gzip.ReadExactly(data);
        return data;
    }
}

/// <summary>A fact that needs /usr/bin/python3 (Debian's python3-torch); skipped only where it is missing.</summary>
public sealed class PythonFactAttribute : FactAttribute
{
    public const string Python = "/usr/bin/python3";

    public PythonFactAttribute()
    {
        if (!File.Exists(Python))
        {
            Skip = $"{Python} is not installed";
        }
    }
}

using System.Diagnostics;
using System.Globalization;
using Emc.Compute;
using Emc.Compute.Training;
using Emc.Core.Data;
using Emc.Core.Training;

namespace Emc.Cli.Commands;

/// <summary>What `emc bench train-local` measured.</summary>
internal sealed record TrainLocalReport(
    string Model,
    long Parameters,
    double WeightsMiB,
    int Threads,
    int BatchSize,
    int Steps,
    long Samples,
    double LoadSeconds,
    double TrainSeconds,
    double SamplesPerSecond,
    double TestAccuracy,
    double TestLoss,
    double PeakRssMiB,
    double RssMiBAtEnd)
{
    public string ToText() => string.Create(CultureInfo.InvariantCulture, $"""
        model          {Model}, {Parameters:N0} parameters ({WeightsMiB:0.00} MiB of fp32 weights)
        training       {Steps} steps × batch {BatchSize} = {Samples:N0} samples in {TrainSeconds:0.0} s: {SamplesPerSecond:N0} samples/s on {Threads} threads (load {LoadSeconds:0.0} s)
        test           accuracy {TestAccuracy:0.0000}, loss {TestLoss:0.0000}
        memory         peak RSS {PeakRssMiB:0.0} MiB, {RssMiBAtEnd:0.0} MiB at the end
        """);
}

/// <summary>
/// Single-process training of a zoo model on an IDX dataset in this process, through the same code a
/// node runs (shards decoded into an <see cref="ExampleSet"/>, <see cref="InnerTrainer"/>,
/// <see cref="Evaluator"/>), but with no network, coordinator or update: the reference for a node's
/// memory and speed.
/// </summary>
internal static class TrainLocalBenchmark
{
    public static TrainLocalReport Run(string modelName, int[]? hidden, string dataDirectory, int steps, int batchSize, int threads, long seed)
    {
        var loadWatch = Stopwatch.StartNew();
        var files = Directory.GetFiles(dataDirectory, "*-ubyte*").Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0)
        {
            throw new FileNotFoundException($"no IDX files (*-ubyte, *-ubyte.gz) in {dataDirectory}");
        }

        ExampleSet train;
        ExampleSet test;
        int[] sampleShape;
        int classes;
        {
            var sources = files.Select(f => new DatasetSource(Path.GetFileName(f), File.ReadAllBytes(f))).ToList();
            var parsed = DatasetParser.Parse(sources, DatasetFormat.Idx, new DatasetParseOptions());

            if (!parsed.Splits.TryGetValue(DatasetSplits.Train, out var trainSplit) || !parsed.Splits.TryGetValue(DatasetSplits.Test, out var testSplit))
            {
                throw new InvalidDataException($"{dataDirectory} needs a train and a test split (file names with 'train' and 't10k' or 'test')");
            }

            // The same representation a node builds from the shards it downloads.
            train = new ExampleSet(DatasetSharder.Shard(trainSplit).Select(s => ShardCodec.Decode(s.Bytes)));
            test = new ExampleSet(DatasetSharder.Shard(testSplit).Select(s => ShardCodec.Decode(s.Bytes)));
            sampleShape = trainSplit.SampleShape;
            classes = trainSplit.Classes;
        }

        // The peak that counts is training's: drop the parse garbage and restart the kernel's high-water mark.
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        ResetPeakRss();
        TorchRuntime.EnsureInitialized();
        if (threads > 0)
        {
            TorchSharp.torch.set_num_threads(threads);
        }

        using var model = TrainableModel.Create(new ModelSpec { Name = modelName, Hidden = hidden }, sampleShape, classes, isText: false, "cpu", seed);
        using var trainer = new InnerTrainer(new InnerOptions { TotalSteps = steps });
        loadWatch.Stop();

        var stream = new SampleStream(seed, shuffle: true, train.Count);
        var watch = Stopwatch.StartNew();
        const int Chunk = 64;
        for (var done = 0; done < steps; done += Chunk)
        {
            var take = Math.Min(Chunk, steps - done);
            trainer.Run(model, train, stream.Batches((long)done * batchSize, take, batchSize), done, CancellationToken.None);
        }

        watch.Stop();
        var all = new long[test.Count];
        for (var i = 0; i < all.Length; i++)
        {
            all[i] = i;
        }

        var result = Evaluator.Evaluate(model, test, all, Math.Max(256, batchSize)); // the batch a node evaluates with
        var pid = Environment.ProcessId;
        var samples = (long)steps * batchSize;
        return new TrainLocalReport(
            modelName,
            model.ParameterCount,
            Math.Round(model.VectorLength * 4 / 1048576.0, 3),
            TorchSharp.torch.get_num_threads(),
            batchSize,
            steps,
            samples,
            Math.Round(loadWatch.Elapsed.TotalSeconds, 2),
            Math.Round(watch.Elapsed.TotalSeconds, 2),
            Math.Round(samples / watch.Elapsed.TotalSeconds, 1),
            Math.Round(result.Accuracy, 4),
            Math.Round(result.MeanLoss, 4),
            Math.Round(ProcessStats.PeakRssMiB(pid), 1),
            Math.Round(ProcessStats.RssMiB(pid), 1));
    }

    /// <summary>Writing 5 to /proc/self/clear_refs resets VmHWM to the current RSS (Linux 4.0 and later).</summary>
    private static void ResetPeakRss()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Not Linux, or not allowed: the peak then includes loading, which only makes the reference larger.
        }
    }
}

using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Emc.Cli.Infrastructure;
using Emc.Client;
using Emc.Core;
using Emc.Core.Training;

namespace Emc.Cli.Commands;

/// <summary>
/// `emc demo`: the main job end to end. Starts a local network of 3 nodes, uploads Fashion-MNIST
/// from Debian's dataset-fashion-mnist, trains the CNN across the nodes with DiLoCo while showing
/// progress, and prints the test accuracy and what each node contributed.
/// </summary>
internal static class DemoCommand
{
    /// <summary>Where Debian's dataset-fashion-mnist puts the IDX files.</summary>
    public const string FashionMnistDirectory = "/usr/share/datasets/fashion-mnist";

    private static readonly string[] FashionMnistFiles =
    [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ];

    public static Command Create()
    {
        var json = CommonOptions.Json();
        var nodes = new Option<int>("--nodes") { Description = "Local nodes. Default 3.", DefaultValueFactory = _ => 3 };
        var model = new Option<string>("--model") { Description = "cnn (default) or mlp.", DefaultValueFactory = _ => "cnn" };
        var epochs = new Option<double>("--epochs") { Description = "Passes over the 60,000 training images. Default 2.", DefaultValueFactory = _ => 2 };
        var innerSteps = new Option<int>("--inner-steps") { Description = "DiLoCo inner steps per round (H). Default 50.", DefaultValueFactory = _ => 50 };
        var data = new Option<string>("--data") { Description = "Data folder of the demo network (wiped first). Default ~/.emc/demo.", DefaultValueFactory = _ => CommonOptions.Home("demo") };
        var datasetDirectory = new Option<string>("--dataset-dir") { Description = $"Where the Fashion-MNIST IDX files are. Default {FashionMnistDirectory}.", DefaultValueFactory = _ => FashionMnistDirectory };
        var command = new Command("demo", "Train a CNN on Fashion-MNIST across a local network of 3 nodes with DiLoCo, and report the test accuracy.")
        {
            json, nodes, model, epochs, innerSteps, data, datasetDirectory,
        };
        command.SetAction(async (result, _) =>
        {
            var directory = result.GetValue(datasetDirectory)!;
            var missing = FashionMnistFiles.Where(f => !File.Exists(Path.Combine(directory, f))).ToList();
            if (missing.Count > 0)
            {
                await Console.Error.WriteLineAsync(
                    $"emc demo: Fashion-MNIST is not installed ({string.Join(", ", missing)} missing in {directory}).\n" +
                    "Install Debian's package with:  sudo apt-get install dataset-fashion-mnist\n" +
                    "or point --dataset-dir at a folder with the four IDX files.");
                return 2;
            }

            var count = result.GetValue(nodes);
            if (count is < 1 or > 16 || result.GetValue(epochs) is <= 0 or > 100 || result.GetValue(innerSteps) is < 1 or > 10_000
                || result.GetValue(model) is not ("cnn" or "mlp"))
            {
                await Console.Error.WriteLineAsync("emc demo: --nodes must be 1 to 16, --epochs in (0, 100], --inner-steps 1 to 10000, --model cnn or mlp.");
                return 2;
            }

            var (stop, registrations) = Signals.OnTermination();
            using (stop)
            using (registrations)
            {
                return await RunAsync(
                    Path.GetFullPath(result.GetValue(data)!), directory, count, result.GetValue(model)!, result.GetValue(epochs), result.GetValue(innerSteps), result.GetValue(json), stop.Token);
            }
        });
        return command;
    }

    private static async Task<int> RunAsync(string root, string datasetDirectory, int count, string model, double epochs, int innerSteps, bool json, CancellationToken stop)
    {
        var log = json ? TextWriter.Null : Console.Out;
        var watch = Stopwatch.StartNew();
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }

        await log.WriteLineAsync($"Starting a local network: a coordinator and {count} nodes (logs in {Path.Combine(root, "logs")}) ...");
        LocalNetwork network;
        try
        {
            // Several nodes share this machine's cores: give each an even share so none starves.
            var threads = Math.Max(1, Environment.ProcessorCount / count);
            network = await LocalNetwork.StartAsync(
                root, count, "http://127.0.0.1:0", "http://127.0.0.1:0", ["--training-threads", threads.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromMinutes(3), stop);
        }
        catch (InvalidOperationException ex)
        {
            await Console.Error.WriteLineAsync($"emc demo: {ex.Message}.");
            return 1;
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return 130;
        }

        await using (network)
        {
            try
            {
                var client = network.CreateClient(TimeSpan.FromMinutes(5));
                await log.WriteLineAsync("Uploading Fashion-MNIST (60,000 training and 10,000 test images) ...");
                var dataset = await client.UploadDatasetAsync("fashion-mnist", "idx", null, null, FashionMnistFiles.Select(f => Path.Combine(datasetDirectory, f)).ToList(), stop);
                await log.WriteLineAsync(DataCommand.Describe(dataset));

                var spec = DemoSpec(model, count, epochs, innerSteps);
                var job = await client.SubmitTrainingAsync(spec, stop);
                await log.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"Training {model} with DiLoCo on {count} nodes: H={spec.InnerSteps} AdamW steps of batch {spec.BatchSize} per round, outer Nesterov lr {spec.Outer.LearningRate} momentum {spec.Outer.Momentum}, int8 updates, {epochs} epochs ({job.Id})"));
                var status = await TrainCommand.WatchAsync(client, job.Id, json: false, stop, log);
                var final = await client.GetTrainingJobAsync(job.Id, stop);
                watch.Stop();
                if (json)
                {
                    Console.WriteLine(JsonSerializer.Serialize(Report(final, watch.Elapsed), EmcJson.Indented));
                }
                else
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"\nTest accuracy: {final.Final?.EvalAccuracy ?? double.NaN:0.0000} on {final.Final?.EvalExamples ?? 0:N0} test images, in {watch.Elapsed.TotalMinutes:0.0} minutes. The model is {final.Model} (`emc model pull` with --coordinator to download it while the network runs)."));
                }

                return status;
            }
            catch (EmcApiException ex)
            {
                await Console.Error.WriteLineAsync($"emc demo: {ex.Message}");
                return 1;
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return 130;
            }
        }
    }

    /// <summary>The demo's job: the CNN of the Fashion-MNIST benchmark table trained with DiLoCo's published outer settings.</summary>
    internal static TrainingJobSpec DemoSpec(string model, int nodes, double epochs, int innerSteps) => TrainingDefaults.Resolve(new TrainingJobSpec
    {
        Name = $"fashion-mnist-{model}",
        Model = new ModelSpec { Name = model },
        Dataset = "fashion-mnist",
        Algorithm = TrainingAlgorithm.Diloco,
        Nodes = new NodeCount { Min = nodes, Max = nodes },
        InnerSteps = innerSteps,
        BatchSize = 64,
        Epochs = epochs,
        Evaluation = new EvaluationSpec { Split = "test", Every = 2, MaxExamples = 2000 },
    });

    private static object Report(TrainingJobView job, TimeSpan elapsed) => new
    {
        job = job.Id,
        state = EmcJson.EnumText(job.State),
        test_accuracy = job.Final?.EvalAccuracy,
        test_loss = job.Final?.EvalLoss,
        test_examples = job.Final?.EvalExamples,
        rounds = job.Round,
        samples = job.Samples,
        seconds = Math.Round(elapsed.TotalSeconds, 1),
        model = job.Model,
        nodes = job.Nodes.OrderBy(n => n.Key, StringComparer.Ordinal).Select(n => new
        {
            node = n.Key,
            rounds = n.Value.Rounds,
            accepted = n.Value.Accepted,
            rejected = n.Value.Rejected,
            dropped = n.Value.Dropped,
            samples = n.Value.Samples,
            samples_per_second = Math.Round(n.Value.SamplesPerSecond, 1),
            bytes_sent = n.Value.BytesSent,
        }).ToList(),
    };
}

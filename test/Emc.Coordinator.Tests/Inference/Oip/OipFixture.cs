using Emc.Compute.Inference;
using Emc.Compute.Training;
using Emc.Contracts.Inference.V2;
using Emc.Coordinator.Hosting;
using Emc.Coordinator.Inference;
using Emc.Coordinator.Inference.Oip;
using Emc.Core.Inference;
using Emc.Core.Training;
using Emc.Coordinator.Tests.Infrastructure;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Tests.Inference.Oip;

/// <summary>
/// A real coordinator with <see cref="InProcessOnnxBackend"/> serving a small MLP exported to ONNX as
/// "mlp" (input FP32 [batch, 8], output "logits" FP32 [batch, 3]), and the same model in an
/// <see cref="OnnxSession"/> of its own to compare answers with.
/// </summary>
public sealed class OipFixture : IAsyncLifetime
{
    public const string Model = "mlp";
    public const int Features = 8;
    public const int Classes = 3;

    /// <summary>The request body limit of the test host, small enough to exceed cheaply.</summary>
    public const int MaxRequestBytes = 1 << 20;

    private string _dataDirectory = null!;
    public CoordinatorHost Host { get; private set; } = null!;

    /// <summary>The operator key: <see cref="Http"/> and <see cref="Channel"/> send it.</summary>
    public string OperatorKey { get; private set; } = "";

    public HttpClient Http { get; private set; } = null!;

    public GrpcChannel Channel { get; private set; } = null!;

    public GRPCInferenceService.GRPCInferenceServiceClient Grpc { get; private set; } = null!;

    public OnnxSession Reference { get; private set; } = null!;

    public InProcessOnnxBackend Backend { get; private set; } = null!;

    /// <summary>The served model's ONNX file.</summary>
    public byte[] Onnx { get; private set; } = [];

    public async Task InitializeAsync()
    {
        using (var model = TrainableModel.Create(new ModelSpec { Name = ModelSpec.Mlp, Hidden = [16] }, [Features], Classes, false, "cpu", 7))
        {
            Onnx = OnnxExporter.Export(model);
        }

        Reference = OnnxSession.Load(Onnx);
        Backend = new InProcessOnnxBackend();
        Backend.Add(Model, Onnx);

        _dataDirectory = Directory.CreateTempSubdirectory("emc-oip-test-").FullName;
        Host = CoordinatorHost.Create(
            new CoordinatorOptions { DataDirectory = _dataDirectory, Urls = "http://127.0.0.1:0", GrpcUrls = "http://127.0.0.1:0" },
            services =>
            {
                services.AddSingleton<IInferenceBackend>(Backend);
                services.Configure<OipOptions>(o => o.MaxRequestBytes = MaxRequestBytes);
            },
            logging => logging.SetMinimumLevel(LogLevel.Warning));
        await Host.StartAsync(CancellationToken.None);
        OperatorKey = File.ReadAllText(Path.Combine(_dataDirectory, "operator.key")).Trim();
        Http = Bearer.Client(Host.Endpoints.ApiUrl, OperatorKey);
        Channel = GrpcChannel.ForAddress(Host.Endpoints.GrpcUrl, new GrpcChannelOptions { MaxReceiveMessageSize = 64 << 20, HttpHandler = Bearer.Handler(OperatorKey) });
        Grpc = new GRPCInferenceService.GRPCInferenceServiceClient(Channel);
    }

    /// <summary>The model's logits for <paramref name="input"/> ([rows, 8]) from ONNX Runtime directly.</summary>
    public float[] Expected(float[] input)
    {
        var rows = input.Length / Features;
        var outputs = Reference.Run([InferTensor.Create<float>("input", [rows, Features], input)]);
        return outputs.Single(o => o.Name == "logits").ToFloatArray();
    }

    /// <summary>Deterministic inputs for <paramref name="rows"/> rows.</summary>
    public static float[] Input(int rows, int seed = 1)
    {
        var random = new Random(seed);
        var values = new float[rows * Features];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)((random.NextDouble() * 4) - 2);
        }

        return values;
    }

    public async Task DisposeAsync()
    {
        Channel.Dispose();
        Http.Dispose();
        await Host.StopAsync(CancellationToken.None);
        await Host.DisposeAsync();
        Backend.Dispose();
        Reference.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_dataDirectory, recursive: true);
    }
}

[CollectionDefinition(Name)]
public sealed class OipCollection : ICollectionFixture<OipFixture>
{
    public const string Name = "oip";
}

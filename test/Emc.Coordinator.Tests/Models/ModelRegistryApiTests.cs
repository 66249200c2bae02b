using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Emc.Client;
using Emc.Compute.Inference;
using Emc.Compute.Training;
using Emc.Coordinator.Blobs;
using Emc.Coordinator.Inference;
using Emc.Coordinator.Persistence;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Coordinator.Training;
using Emc.Core;
using Emc.Core.Inference;
using Emc.Core.Training;
using Microsoft.Extensions.DependencyInjection;
using TorchSharp;

namespace Emc.Coordinator.Tests.Models;

/// <summary>One coordinator shared by the registry tests; each test uses its own model names.</summary>
public sealed class RegistryCoordinatorFixture : IAsyncLifetime
{
    public TestCoordinator Coordinator { get; private set; } = null!;

    public async Task InitializeAsync() => Coordinator = await TestCoordinator.StartAsync();

    public async Task DisposeAsync() => await Coordinator.DisposeAsync();
}

/// <summary>The model registry through its REST API and the client the CLI uses, on a real coordinator.</summary>
public sealed class ModelRegistryApiTests(RegistryCoordinatorFixture fixture) : IClassFixture<RegistryCoordinatorFixture>
{
    private static readonly CancellationToken None = CancellationToken.None;

    private TestCoordinator Coordinator => fixture.Coordinator;

    [Fact]
    public async Task Push_Onnx_StoresFileAsBlobWithSignatureReadFromTheModel()
    {
        var onnx = MlpOnnx(seed: 1);

        var model = await PushAsync("onnx-valid", onnx);

        Assert.Equal(1, model.Version);
        Assert.Equal("onnx", model.Format);
        Assert.Equal(BlobStore.Hash(onnx), model.File);
        Assert.Equal(onnx.Length, model.Bytes);
        Assert.Equal(await Coordinator.Api.GetBlobAsync(model.File!, None), onnx);
        var input = Assert.Single(model.Inputs!);
        Assert.Equal(("input", TensorDatatype.Fp32), (input.Name, input.Datatype));
        Assert.Equal([-1L, 4], input.Shape);
        var output = Assert.Single(model.Outputs!);
        Assert.Equal(("logits", TensorDatatype.Fp32), (output.Name, output.Datatype));
        Assert.Equal([-1L, 3], output.Shape);

        var shown = await Coordinator.Api.GetModelAsync("onnx-valid", null, None);
        Assert.Equal(model.File, shown.File);
        Assert.Equal(model.Inputs!.Select(ModelSignature.Format), shown.Inputs!.Select(ModelSignature.Format));
        Assert.Contains(await Coordinator.Api.GetModelsAsync(None), m => m.Name == "onnx-valid" && m.Version == 1);

        // The API spells datatypes as the Open Inference Protocol does.
        var json = await Coordinator.Http.GetStringAsync("api/v1/models/onnx-valid");
        Assert.Contains("\"datatype\":\"FP32\"", json, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Push_OnnxFromPyTorch_ReadsItsSignature()
    {
        var onnx = await File.ReadAllBytesAsync(Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny_mlp.onnx"));

        var model = await PushAsync("onnx-pytorch", onnx);

        Assert.Equal(["x:FP32:-1,4"], model.Inputs!.Select(ModelSignature.Format));
        Assert.Equal(["y:FP32:-1,2"], model.Outputs!.Select(ModelSignature.Format));
    }

    [Fact]
    public async Task Push_SameName_IncrementsVersion_AndGivenVersionIsUsed()
    {
        var first = await PushAsync("onnx-versions", MlpOnnx(seed: 1));
        var second = await PushAsync("onnx-versions", MlpOnnx(seed: 2));
        var tenth = await PushAsync("onnx-versions", MlpOnnx(seed: 3), version: 10);
        var next = await PushAsync("onnx-versions", MlpOnnx(seed: 1));

        Assert.Equal([1, 2, 10, 11], new[] { first.Version, second.Version, tenth.Version, next.Version });
        Assert.Equal(11, (await Coordinator.Api.GetModelAsync("onnx-versions", null, None)).Version);

        // Content-addressed: the same file pushed twice is one blob.
        Assert.Equal(first.File, next.File);
    }

    [Fact]
    public async Task Push_ExistingVersion_Is409AndStoresNothing()
    {
        await PushAsync("onnx-dup", MlpOnnx(seed: 1), version: 1);
        var before = await SnapshotAsync();

        var (status, detail) = await PushRawAsync("onnx-dup", MlpOnnx(seed: 5), version: 1);

        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Contains("already has version 1", detail, StringComparison.Ordinal);
        Assert.Equal(before, await SnapshotAsync());
    }

    public static TheoryData<string, string> BadFiles => new()
    {
        { "garbage", "not a model" },
        { "truncated", "truncated ONNX model" },
        { "opset", "unsupported opset 99" },
        { "empty", "empty" },
        { "truncated-torchscript", "truncated" },
        { "state-dict", "no code/" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public async Task Push_BadFile_Is400WithReasonAndStoresNothing(string kind, string reason)
    {
        var onnx = MlpOnnx(seed: 1);
        var bytes = kind switch
        {
            "garbage" => "this is not a model, just some text that someone uploaded by mistake\n"u8.ToArray(),
            "truncated" => onnx[..(onnx.Length / 2)],
            "opset" => WithOpset(onnx, 99),
            "empty" => [],
            "truncated-torchscript" => TinyScript()[..2000],
            "state-dict" => StateDictZip(),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        var signature = kind.Contains("torch", StringComparison.Ordinal) || kind == "state-dict";
        var before = await SnapshotAsync();

        var (status, detail) = await PushRawAsync(
            "bad-" + kind, bytes, inputs: signature ? ["x:FP32:-1,4"] : [], outputs: signature ? ["y:FP32:-1,2"] : []);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(reason, detail, StringComparison.Ordinal);
        Assert.Equal(before, await SnapshotAsync());
    }

    [Theory]
    [InlineData("has:colon")]
    [InlineData("has space")]
    [InlineData("")]
    public async Task Push_BadName_Is400(string name)
    {
        var (status, detail) = await PushRawAsync(name, MlpOnnx(seed: 1));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("model name", detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Push_TorchScript_NeedsAndKeepsTheStatedSignature()
    {
        var script = TinyScript();
        var (status, detail) = await PushRawAsync("ts-nosig", script);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("carries no signature", detail, StringComparison.Ordinal);

        var model = await PushAsync("ts-tiny", script, inputs: ["x:FP32:-1,4"], outputs: ["y:FP32:-1,2"]);

        Assert.Equal("torchscript", model.Format);
        Assert.Equal(BlobStore.Hash(script), model.File);
        Assert.Equal(["x:FP32:-1,4"], model.Inputs!.Select(ModelSignature.Format));
        Assert.Equal(["y:FP32:-1,2"], model.Outputs!.Select(ModelSignature.Format));
    }

    [Fact]
    public async Task Push_OnnxWithSignatureOrWrongFormat_Is400()
    {
        var (status, detail) = await PushRawAsync("onnx-sig", MlpOnnx(seed: 1), inputs: ["x:FP32:-1,4"]);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("declares its own inputs", detail, StringComparison.Ordinal);

        (status, detail) = await PushRawAsync("onnx-fmt", MlpOnnx(seed: 1), format: "torchscript");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("not a TorchScript archive", detail, StringComparison.Ordinal);

        (status, detail) = await PushRawAsync("ts-sig", TinyScript(), inputs: ["x:FP99:-1,4"], outputs: ["y:FP32:-1,2"]);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("unknown datatype 'FP99'", detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Remove_Version_ThenWholeModel_AndDeletesUnreferencedBlobs()
    {
        var v1 = await PushAsync("rm-me", MlpOnnx(seed: 11));
        var v2 = await PushAsync("rm-me", MlpOnnx(seed: 12));

        var removed = await Coordinator.Api.RemoveModelAsync("rm-me", 1, None);

        Assert.Equal([1], removed.Select(m => m.Version));
        Assert.False(File.Exists(Blobs.PathOf(v1.File!)));
        Assert.Equal(2, (await Coordinator.Api.GetModelAsync("rm-me", null, None)).Version);
        var missing = await Assert.ThrowsAsync<EmcApiException>(() => Coordinator.Api.GetModelAsync("rm-me", 1, None));
        Assert.Equal(HttpStatusCode.NotFound, missing.Status);

        Assert.Equal([2], (await Coordinator.Api.RemoveModelAsync("rm-me", null, None)).Select(m => m.Version));
        Assert.False(File.Exists(Blobs.PathOf(v2.File!)));
        Assert.DoesNotContain(await Coordinator.Api.GetModelsAsync(None), m => m.Name == "rm-me");
        var gone = await Assert.ThrowsAsync<EmcApiException>(() => Coordinator.Api.RemoveModelAsync("rm-me", null, None));
        Assert.Equal(HttpStatusCode.NotFound, gone.Status);
    }

    [Fact]
    public async Task Remove_WhileDeployed_Is409UntilUndeployed()
    {
        await PushAsync("rm-deployed", MlpOnnx(seed: 21));
        await PushAsync("rm-deployed", MlpOnnx(seed: 22));
        var deployments = Coordinator.Host.Services.GetRequiredService<IDeploymentStore>();
        await deployments.AddAsync(new DeploymentRecord("dep-rm", new DeploymentSpec { Model = "rm-deployed" }, 2, DateTimeOffset.UnixEpoch), None);

        var refused = await Assert.ThrowsAsync<EmcApiException>(() => Coordinator.Api.RemoveModelAsync("rm-deployed", 2, None));
        Assert.Equal(HttpStatusCode.Conflict, refused.Status);
        Assert.Contains("dep-rm", refused.Message, StringComparison.Ordinal);
        var all = await Assert.ThrowsAsync<EmcApiException>(() => Coordinator.Api.RemoveModelAsync("rm-deployed", null, None));
        Assert.Equal(HttpStatusCode.Conflict, all.Status);
        Assert.Equal(2, (await Coordinator.Api.GetModelsAsync(None)).Count(m => m.Name == "rm-deployed"));

        // Version 1 is not the deployed one.
        Assert.Equal([1], (await Coordinator.Api.RemoveModelAsync("rm-deployed", 1, None)).Select(m => m.Version));

        await deployments.RemoveAsync("dep-rm", None);
        Assert.Equal([2], (await Coordinator.Api.RemoveModelAsync("rm-deployed", 2, None)).Select(m => m.Version));
    }

    public static TheoryData<string> Exportable => new() { ModelSpec.Cnn, ModelSpec.GptSmall };

    [Theory]
    [MemberData(nameof(Exportable))]
    public async Task Export_TrainedZooModel_OnnxRuntimeMatchesTorchSharp(string architecture)
    {
        var isText = architecture == ModelSpec.GptSmall;
        var spec = isText
            ? new ModelSpec { Name = ModelSpec.GptSmall, Layers = 2, Heads = 2, Dim = 32, Context = 16, Dropout = 0 }
            : new ModelSpec { Name = ModelSpec.Cnn, Channels = [4, 8], Hidden = [16], Dropout = 0 };
        int[] sampleShape = isText ? [] : [12, 12];
        var classes = isText ? ModelSpec.ByteVocabulary : 5;
        using var trained = TrainableModel.Create(spec, sampleShape, classes, isText, "cpu", seed: 3);
        var vector = trained.ReadVector();
        var noise = new Random(9);
        for (var i = 0; i < vector.Length; i++)
        {
            vector[i] += (float)((noise.NextDouble() - 0.5) * 0.1);
        }

        trained.WriteVector(vector);
        var name = $"zoo-{architecture}";
        await RegisterTrainedAsync(name, trained, spec, sampleShape, classes, isText);

        var described = await Coordinator.Api.GetModelAsync(name, null, None);
        Assert.Equal([isText ? "input:INT64:-1,-1" : "input:FP32:-1,12,12"], described.Inputs!.Select(ModelSignature.Format));
        Assert.Equal([isText ? "logits:FP32:-1,-1,256" : "logits:FP32:-1,5"], described.Outputs!.Select(ModelSignature.Format));

        using var buffer = new MemoryStream();
        var hash = await Coordinator.Api.ExportModelAsync(name, null, "onnx", buffer, None);
        var onnx = buffer.ToArray();
        using var session = OnnxSession.Load(onnx, new OnnxSessionOptions { IntraOpThreads = 1 });

        // The signature the registry states is the one the exported file declares.
        Assert.Equal(described.Inputs!.Select(ModelSignature.Format), session.Info.Inputs.Select(t => $"{t.Name}:{t.TypeName}:{string.Join(",", t.Shape)}"));
        Assert.Equal(described.Outputs!.Select(ModelSignature.Format), session.Info.Outputs.Select(t => $"{t.Name}:{t.TypeName}:{string.Join(",", t.Shape)}"));

        var worst = 0.0;
        foreach (var batch in new[] { 1, 4 })
        {
            using var scope = torch.NewDisposeScope();
            using var generator = new torch.Generator((ulong)(batch + 100), torch.CPU);
            var input = isText
                ? torch.randint(0, 256, [batch, 16], torch.ScalarType.Int64, generator: generator)
                : torch.rand([batch, 12, 12], generator: generator);
            float[] expected;
            using (torch.no_grad())
            {
                expected = trained.Forward(input).data<float>().ToArray();
            }

            var tensor = isText
                ? InferTensor.Create<long>("input", input.shape, input.data<long>().ToArray())
                : InferTensor.Create<float>("input", input.shape, input.data<float>().ToArray());
            var actual = Assert.Single(session.Run([tensor])).ToFloatArray();
            Assert.Equal(expected.Length, actual.Length);
            Assert.True(expected.Max(Math.Abs) > 0.1, "the logits are too small for the comparison to mean anything");
            worst = Math.Max(worst, expected.Zip(actual, (e, a) => (double)Math.Abs(e - a)).Max());
        }

        Assert.True(worst <= 1e-4, $"max |onnx - torch| = {worst}");

        // The export is kept: the second call serves the same blob.
        var row = await Coordinator.Host.Services.GetRequiredService<TrainingStore>().GetModelAsync(name, null, None);
        Assert.Equal(hash, row!.OnnxExportHash);
        using var again = new MemoryStream();
        Assert.Equal(hash, await Coordinator.Api.ExportModelAsync(name, 1, "onnx", again, None));
    }

    [Fact]
    public async Task Export_PushedModelsAndOtherFormats_Are400_UnknownModelIs404()
    {
        await PushAsync("export-onnx", MlpOnnx(seed: 1));
        await PushAsync("export-ts", TinyScript(), inputs: ["x:FP32:-1,4"], outputs: ["y:FP32:-1,2"]);
        using var trained = TrainableModel.Create(new ModelSpec { Name = ModelSpec.Mlp, Hidden = [8] }, [4], 3, false, "cpu", seed: 1);
        await RegisterTrainedAsync("export-zoo", trained, new ModelSpec { Name = ModelSpec.Mlp, Hidden = [8] }, [4], 3, false);

        foreach (var (path, status, text) in new[]
        {
            ("api/v1/models/export-onnx/export?format=onnx", HttpStatusCode.BadRequest, "pushed as an ONNX file"),
            ("api/v1/models/export-ts/export?format=onnx", HttpStatusCode.BadRequest, "TorchScript"),
            ("api/v1/models/export-zoo/export?format=tflite", HttpStatusCode.BadRequest, "the only one is onnx"),
            ("api/v1/models/export-zoo/export?version=0", HttpStatusCode.BadRequest, "positive integer"),
            ("api/v1/models/export-zoo/export?version=7", HttpStatusCode.NotFound, "no version 7"),
            ("api/v1/models/nothing-here/export", HttpStatusCode.NotFound, "No model named"),
        })
        {
            using var response = await Coordinator.Http.GetAsync(path);
            Assert.Equal(status, response.StatusCode);
            Assert.Contains(text, await DetailAsync(response), StringComparison.Ordinal);
        }
    }

    private BlobStore Blobs => Coordinator.Host.Services.GetRequiredService<BlobStore>();

    private async Task RegisterTrainedAsync(string name, TrainableModel trained, ModelSpec spec, int[] sampleShape, int classes, bool isText)
    {
        var weights = WeightsCodec.Encode(trained.ReadVector());
        var hash = await Blobs.PutAsync(weights, None);
        var descriptor = new ModelDescriptor
        {
            Name = name,
            Format = "emc-zoo",
            Model = spec,
            SampleShape = sampleShape,
            Classes = classes,
            IsText = isText,
            Weights = hash,
            VectorLength = trained.VectorLength,
            Bytes = weights.Length,
            SourceJob = "test",
        };
        await Coordinator.Host.Services.GetRequiredService<TrainingStore>().RegisterModelAsync(
            new ModelRow
            {
                Name = name,
                Format = "emc-zoo",
                DescriptorJson = JsonSerializer.Serialize(descriptor, EmcJson.Options),
                WeightsHash = hash,
                Bytes = weights.Length,
                SourceJob = "test",
            },
            null,
            None);
    }

    private async Task<ModelDescriptor> PushAsync(string name, byte[] content, int? version = null, string[]? inputs = null, string[]? outputs = null)
    {
        var path = Path.Combine(Coordinator.DataDirectory, $"push-{Guid.NewGuid():N}");
        await File.WriteAllBytesAsync(path, content);
        try
        {
            return await Coordinator.Api.PushModelAsync(path, name, version, null, inputs ?? [], outputs ?? [], None);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private async Task<(HttpStatusCode Status, string Detail)> PushRawAsync(
        string name, byte[] content, int? version = null, string? format = null, string[]? inputs = null, string[]? outputs = null)
    {
        using var form = new MultipartFormDataContent
        {
            { new StringContent(name), "name" },
            { new ByteArrayContent(content), "file", "model.bin" },
        };
        if (version is { } v)
        {
            form.Add(new StringContent(v.ToString(System.Globalization.CultureInfo.InvariantCulture)), "version");
        }

        if (format is not null)
        {
            form.Add(new StringContent(format), "format");
        }

        foreach (var input in inputs ?? [])
        {
            form.Add(new StringContent(input), "input");
        }

        foreach (var output in outputs ?? [])
        {
            form.Add(new StringContent(output), "output");
        }

        using var response = await Coordinator.Http.PostAsync("api/v1/models", form);
        return (response.StatusCode, await DetailAsync(response));
    }

    private static async Task<string> DetailAsync(HttpResponseMessage response)
    {
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        return problem.TryGetProperty("detail", out var detail) ? detail.GetString() ?? "" : problem.ToString();
    }

    /// <summary>The registry's rows and the blob files: what a refused push must leave as it was.</summary>
    private async Task<string> SnapshotAsync()
    {
        var models = await Coordinator.Api.GetModelsAsync(None);
        var root = Path.Combine(Coordinator.DataDirectory, "blobs");
        var blobs = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Select(Path.GetFileName).Order(StringComparer.Ordinal);
        return string.Join(",", models.Select(m => $"{m.Name}:{m.Version}")) + "|" + string.Join(",", blobs);
    }

    private static byte[] MlpOnnx(int seed)
    {
        using var model = TrainableModel.Create(new ModelSpec { Name = ModelSpec.Mlp, Hidden = [8] }, [4], 3, false, "cpu", seed);
        return OnnxExporter.Export(model);
    }

    /// <summary>The file with its standard opset import rewritten (the exporter writes opset 21 last but for the metadata).</summary>
    private static byte[] WithOpset(byte[] onnx, byte opset)
    {
        ReadOnlySpan<byte> import = [0x42, 0x02, 0x10, OnnxExporter.Opset];
        var at = onnx.AsSpan().LastIndexOf(import);
        Assert.True(at > 0, "no opset import found");
        var patched = onnx.ToArray();
        patched[at + 3] = opset;
        return patched;
    }

    private static byte[] TinyScript() => File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny_mlp.pt"));

    /// <summary>A zip with the layout torch.save gives a state_dict: data.pkl and version, but no code/.</summary>
    private static byte[] StateDictZip()
    {
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var entry in new[] { "archive/data.pkl", "archive/version", "archive/data/0" })
            {
                using var stream = zip.CreateEntry(entry).Open();
                stream.Write("3\n"u8);
            }
        }

        return buffer.ToArray();
    }
}

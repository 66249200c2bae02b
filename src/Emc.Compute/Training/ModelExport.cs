using System.Text.Json;
using System.Text.Json.Nodes;
using Emc.Core.Training;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Emc.Compute.Training;

/// <summary>
/// Writes trained models in forms PyTorch reads: a state_dict for <c>torch.load</c> (zoo models
/// are rebuilt with <c>docs/zoo/emc_zoo.py</c>), and TorchScript for TorchScript models.
/// </summary>
public static class ModelExport
{
    /// <summary>
    /// Writes the model's state_dict (parameters and buffers under their PyTorch names) to
    /// <paramref name="path"/> in PyTorch's zip format, so that
    /// <c>model.load_state_dict(torch.load(path))</c> works on the module that
    /// <c>emc_zoo.build(spec)</c> returns for <see cref="SpecJson"/>.
    /// </summary>
    public static void SaveStateDict(TrainableModel model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        model.Module.save_py(path);
    }

    /// <summary>
    /// Writes a TorchScript model, with its trained weights, as a TorchScript archive that
    /// <c>torch.jit.load</c> (PyTorch) and <c>torch.jit.load</c> (TorchSharp) read.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model is a zoo model; use <see cref="SaveStateDict"/>.</exception>
    public static void SaveTorchScript(TrainableModel model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (model.Module is not jit.ScriptModule script)
        {
            throw new InvalidOperationException($"{model.Spec.Name} is a zoo model; export it with SaveStateDict and rebuild it with emc_zoo.py");
        }

        jit.save(script, path);
    }

    /// <summary>
    /// The spec document <c>emc_zoo.build</c> takes: the spec with its defaults filled in, plus
    /// the sample shape and classes the model was built for (camelCase, as the API writes it).
    /// </summary>
    public static string SpecJson(TrainableModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var spec = JsonSerializer.SerializeToNode(model.Spec, Core.EmcJson.Options)!.AsObject();
        foreach (var key in spec.Where(p => p.Value is null).Select(p => p.Key).ToList())
        {
            spec.Remove(key);
        }

        spec["sampleShape"] = new JsonArray([.. model.SampleShape.Select(d => (JsonNode)d)]);
        if (!model.IsText)
        {
            spec["classes"] = model.Classes;
        }

        return spec.ToJsonString();
    }
}

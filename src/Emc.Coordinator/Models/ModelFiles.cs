using System.IO.Compression;
using Emc.Compute.Inference;
using Emc.Core.Inference;

namespace Emc.Coordinator.Models;

/// <summary>
/// What a pushed file is: the checks that need no model runtime (the format, the TorchScript
/// archive layout) and the reading of an ONNX file's signature through ONNX Runtime.
/// </summary>
internal static class ModelFiles
{
    public const string Onnx = "onnx";
    public const string TorchScript = "torchscript";

    /// <summary>The format of a zip archive (TorchScript, or PyTorch's torch.save format); "PK\x03\x04".</summary>
    public static bool IsZip(ReadOnlySpan<byte> content) => content.StartsWith("PK\u0003\u0004"u8);

    /// <summary>The format the caller named, or the one the bytes look like; null with an error when the two disagree.</summary>
    public static (string? Format, string? Error) DetectFormat(ReadOnlySpan<byte> content, string? requested)
    {
        var zip = IsZip(content);
        return requested switch
        {
            null or "" => (zip ? TorchScript : Onnx, null),
            Onnx when zip => (null, "the file is a zip archive (PyTorch's format), not an ONNX model"),
            TorchScript when !zip => (null, "not a TorchScript archive: a file saved by torch.jit.save is a zip archive, and this one is not"),
            Onnx or TorchScript => (requested, null),
            _ => (null, $"unknown model format '{requested}'; use onnx or torchscript"),
        };
    }

    /// <summary>The inputs and outputs an ONNX file declares; an error when it is not a model ONNX Runtime can load.</summary>
    public static (IReadOnlyList<TensorMetadata> Inputs, IReadOnlyList<TensorMetadata> Outputs, long Opset, string? Error) ReadOnnx(byte[] content, bool detected)
    {
        OnnxModelInfo info;
        try
        {
            info = OnnxModelInfo.Read(content);
        }
        catch (InvalidDataException ex)
        {
            var message = detected && ex.Message.StartsWith("not an ONNX model", StringComparison.Ordinal)
                ? $"not a model: the file is neither a TorchScript archive nor an ONNX model ({ex.Message})"
                : ex.Message;
            return ([], [], 0, message);
        }

        var errors = new List<string>();
        var inputs = Convert(info.Inputs, "input", errors);
        var outputs = Convert(info.Outputs, "output", errors);
        if (inputs.Count == 0 || outputs.Count == 0)
        {
            errors.Add("the model must have at least one input and one output");
        }

        return errors.Count > 0 ? ([], [], info.Opset, string.Join("; ", errors)) : (inputs, outputs, info.Opset, null);
    }

    /// <summary>
    /// Checks that the zip archive has TorchScript's layout: one top folder holding <c>data.pkl</c>,
    /// <c>version</c> and the module's Python code under <c>code/</c>. A state_dict or a model
    /// pickled with torch.save has the first two but no code.
    /// </summary>
    public static string? CheckTorchScriptLayout(byte[] content)
    {
        List<string> names;
        try
        {
            using var archive = new ZipArchive(new MemoryStream(content, writable: false), ZipArchiveMode.Read);
            names = [.. archive.Entries.Select(e => e.FullName)];
        }
        catch (InvalidDataException ex)
        {
            return $"not a TorchScript archive, or a truncated one: the zip cannot be read ({ex.Message})";
        }

        var top = names.Select(n => n.Split('/')[0]).Distinct(StringComparer.Ordinal).ToList();
        if (top.Count != 1)
        {
            return "not a TorchScript archive: its entries are not all in one top folder";
        }

        var root = top[0] + "/";
        var missing = new List<string>();
        if (!names.Contains(root + "data.pkl"))
        {
            missing.Add("data.pkl");
        }

        if (!names.Contains(root + "version") && !names.Contains(root + ".data/version"))
        {
            missing.Add("version");
        }

        if (missing.Count > 0)
        {
            return $"not a TorchScript archive: it has no {string.Join(" and no ", missing)}";
        }

        return names.Any(n => n.StartsWith(root + "code/", StringComparison.Ordinal) && n.EndsWith(".py", StringComparison.Ordinal))
            ? null
            : "not a TorchScript archive: it holds no code/, so it is a state_dict or a model pickled with torch.save; save the module with torch.jit.script(model).save(path)";
    }

    /// <summary>Checks a signature stated by the pusher: at least one input and one output, names unique on each side.</summary>
    public static string? CheckSignature(IReadOnlyList<TensorMetadata> inputs, IReadOnlyList<TensorMetadata> outputs)
    {
        if (inputs.Count == 0 || outputs.Count == 0)
        {
            return "a TorchScript file carries no signature: state it with input=NAME:DATATYPE:SHAPE and output=NAME:DATATYPE:SHAPE (emc model push --input/--output), for example input:FP32:-1,1,28,28";
        }

        foreach (var (side, tensors) in new[] { ("input", inputs), ("output", outputs) })
        {
            var duplicate = tensors.GroupBy(t => t.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
            if (duplicate is not null)
            {
                return $"the {side} '{duplicate.Key}' is declared twice";
            }
        }

        return null;
    }

    private static List<TensorMetadata> Convert(IReadOnlyList<OnnxTensorInfo> tensors, string side, List<string> errors)
    {
        var result = new List<TensorMetadata>(tensors.Count);
        foreach (var tensor in tensors)
        {
            if (tensor.Datatype is { } datatype)
            {
                result.Add(new TensorMetadata(tensor.Name, datatype, tensor.Shape));
            }
            else
            {
                errors.Add($"the {side} '{tensor.Name}' is a {tensor.TypeName}; only tensors of the Open Inference Protocol's datatypes can be served");
            }
        }

        return result;
    }
}

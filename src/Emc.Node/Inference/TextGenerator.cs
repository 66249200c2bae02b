using System.Runtime.InteropServices;
using Emc.Core.Inference;
using Emc.Core.Training;

namespace Emc.Node.Inference;

/// <summary>What one generation asks for, as the node reads it off a GenerateCall.</summary>
/// <param name="Prompt">The prompt's tokens (UTF-8 bytes).</param>
/// <param name="MaxTokens">Tokens to generate at most (at least 1).</param>
/// <param name="Temperature">0 for greedy decoding.</param>
/// <param name="TopP">Nucleus sampling's probability mass, in (0, 1].</param>
/// <param name="Seed">Seeds the sampler.</param>
/// <param name="Stops">Stop sequences.</param>
public sealed record GenerationSettings(byte[] Prompt, int MaxTokens, float Temperature, float TopP, ulong Seed, IReadOnlyList<byte[]> Stops);

/// <summary>One step of a generation: new text (whole characters), and the outcome on the last step.</summary>
/// <param name="Text">Text to send now; may be empty on the last step.</param>
/// <param name="FinishReason">"stop" or "length" on the last step; null before.</param>
/// <param name="PromptTokens">Tokens the model read from the prompt (after cropping to its window).</param>
/// <param name="CompletionTokens">Tokens generated so far.</param>
public readonly record struct GenerationStep(byte[] Text, string? FinishReason, int PromptTokens, int CompletionTokens);

/// <summary>
/// Generates text with a byte-level language model served on this node: any <see cref="IServedModel"/>
/// with one INT64 [-1, -1] input of byte tokens and FP32 [-1, -1, 256] logits out (a gpt-small of the
/// zoo, or the same as TorchScript or ONNX). Each token runs the model once over the last
/// <c>context</c> tokens (no key/value cache: the zoo's windows are short) on the model's own thread,
/// without gradients, and picks the next byte with a <see cref="TokenSampler"/>.
/// </summary>
public static class TextGenerator
{
    /// <summary>The window of a model the registry does not give one for.</summary>
    public const int DefaultContext = 128;

    /// <summary>Whether <paramref name="model"/> is a byte-level language model this generator can run.</summary>
    public static bool CanGenerate(IServedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Inputs is [{ Datatype: TensorDatatype.Int64, Shape.Count: 2 }]
            && model.Outputs is [{ Datatype: TensorDatatype.Fp32, Shape: [_, _, var vocabulary] }]
            && (vocabulary == ModelSpec.ByteVocabulary || vocabulary < 0);
    }

    /// <summary>The context window of a registered text model: its spec's, or <see cref="DefaultContext"/>.</summary>
    public static int ContextOf(ModelDescriptor model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Model.WithDefaults().Context is > 0 and var context ? context : DefaultContext;
    }

    /// <summary>
    /// Generates until a stop sequence, <see cref="GenerationSettings.MaxTokens"/> or cancellation,
    /// yielding a step whenever there is text to send and always a last step with the finish reason.
    /// </summary>
    /// <exception cref="ArgumentException">The settings are out of range.</exception>
    public static async IAsyncEnumerable<GenerationStep> GenerateAsync(
        IServedModel model,
        int context,
        GenerationSettings settings,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfLessThan(context, 1);
        if (settings.MaxTokens < 1)
        {
            throw new ArgumentException("max_tokens must be at least 1");
        }

        var sampler = new TokenSampler(settings.Temperature, settings.TopP, settings.Seed);
        var emitter = new ByteTextEmitter(settings.Stops);
        var inputName = model.Inputs[0].Name;
        string[] outputs = [model.Outputs[0].Name];

        // The window the model reads: the prompt's last tokens, then each generated one.
        var window = new List<long>(context);
        var promptStart = Math.Max(0, settings.Prompt.Length - context);
        for (var i = promptStart; i < settings.Prompt.Length; i++)
        {
            window.Add(settings.Prompt[i]);
        }

        var promptTokens = window.Count;
        if (window.Count == 0)
        {
            // An empty prompt: start from a newline, as text after a line break.
            window.Add('\n');
        }

        var tokens = new long[context];
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var length = window.Count;
            window.CopyTo(tokens);
            var input = InferTensor.Create<long>(inputName, [1, length], tokens.AsSpan(0, length));
            var result = await model.RunAsync([input], outputs, cancellationToken);
            var logits = result[0];
            var vocabulary = (int)logits.Shape[^1];
            if (logits.Shape.Count != 3 || vocabulary != ModelSpec.ByteVocabulary || logits.Data.Length != length * vocabulary * sizeof(float))
            {
                throw new InvalidDataException($"the model's logits have shape [{string.Join(", ", logits.Shape)}], not [1, {length}, {ModelSpec.ByteVocabulary}]");
            }

            var last = MemoryMarshal.Cast<byte, float>(logits.Data.Span).Slice((length - 1) * vocabulary, vocabulary);
            var token = (byte)sampler.Next(last);
            var text = emitter.Add(token);
            if (emitter.Stopped)
            {
                yield return new GenerationStep(text, "stop", promptTokens, emitter.Generated);
                yield break;
            }

            if (emitter.Generated >= settings.MaxTokens)
            {
                yield return new GenerationStep([.. text, .. emitter.Flush()], "length", promptTokens, emitter.Generated);
                yield break;
            }

            if (text.Length > 0)
            {
                yield return new GenerationStep(text, null, promptTokens, emitter.Generated);
            }

            if (window.Count == context)
            {
                window.RemoveAt(0);
            }

            window.Add(token);
        }
    }
}

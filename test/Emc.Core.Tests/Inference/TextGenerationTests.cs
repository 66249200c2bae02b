using System.Text;
using Emc.Core.Inference;

namespace Emc.Core.Tests.Inference;

public sealed class TextGenerationTests
{
    [Fact]
    public void Emitter_MultiByteCharacters_AreEmittedWhole()
    {
        var emitter = new ByteTextEmitter([]);
        var bytes = Encoding.UTF8.GetBytes("a€😀b");
        var pieces = bytes.Select(emitter.Add).Where(p => p.Length > 0).Select(p => Encoding.UTF8.GetString(p)).ToList();
        Assert.Equal(["a", "€", "😀", "b"], pieces);
    }

    [Fact]
    public void Emitter_StopSequence_EndsTheTextWithoutIt()
    {
        var emitter = new ByteTextEmitter([Encoding.UTF8.GetBytes("\nUser:")]);
        var text = new List<byte>();
        foreach (var b in Encoding.UTF8.GetBytes("Hi\nUs there\nUser: more"))
        {
            text.AddRange(emitter.Add(b));
            if (emitter.Stopped)
            {
                break;
            }
        }

        Assert.True(emitter.Stopped);
        Assert.Equal("Hi\nUs there", Encoding.UTF8.GetString([.. text]));
        Assert.Equal("Hi\nUs there\nUser:".Length, emitter.Generated);
    }

    [Fact]
    public void Emitter_HeldBytes_AreFlushedAtTheEnd()
    {
        var emitter = new ByteTextEmitter([Encoding.UTF8.GetBytes("END")]);
        var text = new List<byte>();
        foreach (var b in Encoding.UTF8.GetBytes("abEN"))
        {
            text.AddRange(emitter.Add(b));
        }

        Assert.Equal("ab", Encoding.UTF8.GetString([.. text]));
        Assert.Equal("EN", Encoding.UTF8.GetString(emitter.Flush()));
    }

    [Fact]
    public void Sampler_TemperatureZero_IsArgMaxWithTiesToTheLowest()
    {
        var sampler = new TokenSampler(0, 1, 1);
        Assert.Equal(2, sampler.Next([0f, 1f, 3f, 3f]));
    }

    [Fact]
    public void Sampler_SameSeed_SameDraws_AndTopPKeepsTheNucleus()
    {
        float[] logits = [2f, 1.9f, -5f, -6f];
        var a = new TokenSampler(1, 0.9f, 42);
        var b = new TokenSampler(1, 0.9f, 42);
        var drawsA = Enumerable.Range(0, 200).Select(_ => a.Next(logits)).ToList();
        var drawsB = Enumerable.Range(0, 200).Select(_ => b.Next(logits)).ToList();
        Assert.Equal(drawsA, drawsB);
        Assert.All(drawsA, t => Assert.True(t is 0 or 1));
        Assert.Contains(0, drawsA);
        Assert.Contains(1, drawsA);
    }

    [Fact]
    public void Sampler_OutOfRangeSettings_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenSampler(-1, 1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenSampler(1, 0, 0));
    }
}

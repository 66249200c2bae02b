using System.Globalization;

namespace Emc.Core.Verification;

/// <summary>
/// A fault a node can be told to commit on purpose (<c>emc node --simulate-fault MODE[:FRACTION]</c>), to
/// test that a network's defences catch it. An honest node has none.
/// </summary>
public enum FaultMode
{
    /// <summary>No fault: an honest node.</summary>
    None = 0,

    /// <summary>Training: hands in −Δ, the update pointing the wrong way.</summary>
    SignFlip,

    /// <summary>Training: hands in noise with the norm of its real update.</summary>
    Random,

    /// <summary>Training: hands in its real update scaled up (×10), to dominate the aggregate.</summary>
    Scaled,

    /// <summary>Training: runs a tenth of the inner steps it is given and claims all of them.</summary>
    Lazy,

    /// <summary>Training: trains nothing and hands in the network's own last outer step (the difference of the last two global weights) as its update.</summary>
    Copy,

    /// <summary>Inference: corrupts the outputs of a fraction of the requests it serves.</summary>
    WrongOutput,

    /// <summary>Admission and challenges: claims ten times the compute and memory bandwidth it measured.</summary>
    OverstatedHardware,

    /// <summary>Training: commits to its inner optimizer state in every manifest but does not keep it, so it cannot hand it over when its round is replayed.</summary>
    WithholdState,
}

/// <summary>A <see cref="FaultMode"/> and, for modes that act on some of the work only, the fraction of it.</summary>
/// <param name="Mode">What the node does wrong.</param>
/// <param name="Fraction">The share of rounds or requests it does it on, in (0, 1]; 1 means every one.</param>
public sealed record FaultSimulation(FaultMode Mode, double Fraction = 1)
{
    /// <summary>The default fraction of <see cref="FaultMode.WrongOutput"/>: a tenth of the requests.</summary>
    public const double DefaultWrongOutputFraction = 0.1;

    /// <summary>How much <see cref="FaultMode.Scaled"/> multiplies the update by.</summary>
    public const float ScaleFactor = 10f;

    /// <summary>How many times the real figures <see cref="FaultMode.OverstatedHardware"/> claims.</summary>
    public const double OverstateFactor = 10;

    /// <summary>The share of the given inner steps a <see cref="FaultMode.Lazy"/> node runs.</summary>
    public const double LazyStepFraction = 0.1;

    /// <summary>The wire and command-line names of the modes, in the order of <see cref="FaultMode"/>.</summary>
    public static IReadOnlyList<string> ModeNames { get; } =
        ["none", "sign-flip", "random", "scaled", "lazy", "copy", "wrong-output", "overstated-hardware", "withhold-state"];

    /// <summary>The mode's name, as <see cref="Parse"/> reads it.</summary>
    public static string Name(FaultMode mode) => ModeNames[(int)mode];

    /// <summary>
    /// Reads <c>MODE</c> or <c>MODE:FRACTION</c>, for example <c>sign-flip</c> or <c>wrong-output:0.25</c>.
    /// Throws <see cref="FormatException"/> naming the valid modes for anything else.
    /// </summary>
    public static FaultSimulation Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        var name = (colon < 0 ? text : text[..colon]).Trim().ToLowerInvariant();
        var index = -1;
        for (var i = 1; i < ModeNames.Count; i++)
        {
            if (ModeNames[i] == name)
            {
                index = i;
            }
        }

        if (index < 0)
        {
            throw new FormatException($"'{name}' is not a fault mode; use one of {string.Join(", ", ModeNames.Skip(1))}, optionally followed by ':FRACTION'");
        }

        var mode = (FaultMode)index;
        var fraction = mode == FaultMode.WrongOutput ? DefaultWrongOutputFraction : 1;
        if (colon >= 0)
        {
            var value = text[(colon + 1)..].Trim();
            if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out fraction) || !(fraction > 0 && fraction <= 1))
            {
                throw new FormatException($"the fraction of '{name}' must be a number in (0, 1], not '{value}'");
            }
        }

        return new FaultSimulation(mode, fraction);
    }

    /// <summary>Whether this unit of work (a round, a request) is one the node gets wrong, for a uniform draw in [0, 1).</summary>
    public bool Strikes(double draw) => Mode != FaultMode.None && draw < Fraction;

    public override string ToString() =>
        Fraction >= 1 ? Name(Mode) : $"{Name(Mode)}:{Fraction.ToString("0.###", CultureInfo.InvariantCulture)}";
}

namespace Emc.Core.Verification;

/// <summary>
/// What a node told to misbehave (<see cref="FaultSimulation"/>) does to the pseudo-gradient it hands in,
/// Δ = W(start) − W(trained). Lazy and copy nodes also claim steps they did not run; that part is the
/// trainer's.
/// </summary>
public static class SimulatedFaults
{
    /// <summary>
    /// Changes <paramref name="delta"/> in place for <paramref name="mode"/>: sign-flip negates it, random
    /// replaces it by Gaussian noise of the same norm, scaled multiplies it by
    /// <see cref="FaultSimulation.ScaleFactor"/>, copy replaces it by the network's own last outer step
    /// (<paramref name="previousBase"/> − <paramref name="currentBase"/>, zeros before two rounds were seen);
    /// other modes leave it.
    /// </summary>
    public static void Apply(FaultMode mode, Span<float> delta, ReadOnlySpan<float> previousBase, ReadOnlySpan<float> currentBase, Random? random = null)
    {
        switch (mode)
        {
            case FaultMode.SignFlip:
                for (var i = 0; i < delta.Length; i++)
                {
                    delta[i] = -delta[i];
                }

                break;
            case FaultMode.Scaled:
                for (var i = 0; i < delta.Length; i++)
                {
                    delta[i] *= FaultSimulation.ScaleFactor;
                }

                break;
            case FaultMode.Random:
                random ??= Random.Shared;
                double norm = 0;
                foreach (var value in delta)
                {
                    norm += (double)value * value;
                }

                double noiseNorm = 0;
                for (var i = 0; i < delta.Length; i++)
                {
                    // Box-Muller: one standard normal per draw pair.
                    var u = 1.0 - random.NextDouble();
                    var v = random.NextDouble();
                    var z = Math.Sqrt(-2.0 * Math.Log(u)) * Math.Cos(2 * Math.PI * v);
                    delta[i] = (float)z;
                    noiseNorm += z * z;
                }

                var scale = noiseNorm > 0 ? Math.Sqrt(norm / noiseNorm) : 0;
                for (var i = 0; i < delta.Length; i++)
                {
                    delta[i] = (float)(delta[i] * scale);
                }

                break;
            case FaultMode.Copy:
                if (previousBase.Length == delta.Length && currentBase.Length == delta.Length)
                {
                    for (var i = 0; i < delta.Length; i++)
                    {
                        delta[i] = previousBase[i] - currentBase[i];
                    }
                }
                else
                {
                    delta.Clear();
                }

                break;
        }
    }
}

namespace Emc.Core.Tests.Training;

/// <summary>Seeded random vectors for the training tests.</summary>
internal static class TestVectors
{
    public static float[] Gaussian(Random random, int length, double scale = 1)
    {
        var values = new float[length];
        for (var i = 0; i < length; i++)
        {
            // Box–Muller; 1 − NextDouble() keeps the logarithm away from 0.
            var u1 = 1.0 - random.NextDouble();
            var u2 = random.NextDouble();
            values[i] = (float)(scale * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }

        return values;
    }

    /// <summary>An honest node's update: the round's common direction plus its own noise.</summary>
    public static float[] Honest(Random random, float[] direction, double noise)
    {
        var values = Gaussian(random, direction.Length, noise);
        for (var i = 0; i < values.Length; i++)
        {
            values[i] += direction[i];
        }

        return values;
    }

    public static float[] Scaled(float[] values, float factor) => values.Select(v => v * factor).ToArray();
}

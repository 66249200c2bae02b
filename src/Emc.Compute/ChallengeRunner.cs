using Emc.Core.Verification;
using TorchSharp;
using static TorchSharp.torch;

namespace Emc.Compute;

/// <summary>Computes a hardware challenge (<see cref="ChallengeWork"/>) on a device with libtorch's dense fp32 products.</summary>
public static class ChallengeRunner
{
    /// <summary>
    /// Returns C, the end of the challenge's product chain, as n² values in row-major order. Every product
    /// runs on <paramref name="device"/>; the cancellation token is checked between products.
    /// </summary>
    /// <exception cref="ArgumentException">The device is malformed or absent, or the challenge is not valid.</exception>
    public static float[] Run(ChallengeWork work, string device, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        var errors = MatmulChallenge.Validate(work);
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", errors), nameof(work));
        }

        var target = TorchRuntime.ParseDevice(device);
        TorchRuntime.EnsureInitialized();
        var n = work.Size;
        var values = new float[n * n];
        using var noGrad = torch.no_grad();
        MatmulChallenge.Fill(work.Seed, 0, n, values);
        using var a = torch.tensor(values, [n, n], device: target);
        MatmulChallenge.Fill(work.Seed, 1, n, values);
        var m = torch.tensor(values, [n, n], device: target);
        try
        {
            for (var step = 1; step <= work.Products; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var rolled = m.roll(MatmulChallenge.Shift(work.Seed, step, n), 0);
                var next = a.mm(rolled);
                m.Dispose();
                m = next;
            }

            using var cpu = m.cpu();
            cpu.data<float>().CopyTo(values);
            return values;
        }
        finally
        {
            m.Dispose();
        }
    }
}

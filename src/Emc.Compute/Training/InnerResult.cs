namespace Emc.Compute.Training;

/// <summary>What a run of inner steps reports; the trained weights stay in the model.</summary>
/// <param name="Losses">The mean loss of each step's batch, measured before that step's update.</param>
/// <param name="Samples">Examples (windows for text) processed.</param>
/// <param name="Elapsed">Wall time of the run.</param>
public sealed record InnerResult(float[] Losses, long Samples, TimeSpan Elapsed);

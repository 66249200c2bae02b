namespace Emc.Coordinator.Inference;

/// <summary>Which way a deployment should go.</summary>
public enum ScaleDirection
{
    None,
    Up,
    Down,
}

/// <summary>The autoscaler's verdict.</summary>
/// <param name="Direction">Which way.</param>
/// <param name="Replicas">The replica count to aim at (the current count when <paramref name="Direction"/> is None).</param>
/// <param name="Reason">Why, for logs and the dashboard.</param>
public readonly record struct ScaleDecision(ScaleDirection Direction, int Replicas, string Reason);

using Emc.Coordinator.Accounts;

namespace Emc.Coordinator.Persistence;

/// <summary>A deployment: a model version served by nodes, as <see cref="Inference.DeploymentRecord"/> stores it.</summary>
public sealed class DeploymentRow
{
    public required string Id { get; set; }

    /// <summary>The registered model's name (<see cref="Core.Inference.DeploymentSpec.Model"/>).</summary>
    public required string Model { get; set; }

    /// <summary>The version the deployment resolved to.</summary>
    public int Version { get; set; }

    /// <summary>The <see cref="Core.Inference.DeploymentSpec"/> as JSON.</summary>
    public required string SpecJson { get; set; }

    public long CreatedAtUnixMs { get; set; }

    /// <summary>The account whose deployment it is (deployments from before accounts belong to the operator).</summary>
    public string Owner { get; set; } = AccountIds.Operator;
}

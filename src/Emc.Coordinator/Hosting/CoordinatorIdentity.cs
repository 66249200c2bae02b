namespace Emc.Coordinator.Hosting;

/// <summary>The coordinator's durable id, which registrations are signed for. Set once at start.</summary>
public sealed class CoordinatorIdentity
{
    private string? _id;

    public string Id
    {
        get => _id ?? throw new InvalidOperationException("The coordinator has not started yet.");
        set => _id = value;
    }
}

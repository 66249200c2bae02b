using Emc.Core.Inference;
using Emc.Core.Verification;
using Emc.Node.Inference;
using Emc.Node.Work;

namespace Emc.Node.Agent;

/// <summary>Settings of the node agent (`emc node`).</summary>
public sealed class NodeAgentOptions
{
    /// <summary>The coordinator's API address. Default: EMC_COORDINATOR or http://127.0.0.1:7070.</summary>
    public Uri Coordinator { get; set; } = new("http://127.0.0.1:7070");

    /// <summary>Display name. Default: the host name.</summary>
    public string Name { get; set; } = Environment.MachineName;

    /// <summary>Folder of the node key and caches. Default ~/.emc/node.</summary>
    public string DataDirectory { get; set; } = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".emc", "node");

    /// <summary>Devices offered to the network. Default: cpu.</summary>
    public IReadOnlyList<string> Devices { get; set; } = ["cpu"];

    /// <summary>First reconnect delay. Default 1 s.</summary>
    public TimeSpan ReconnectInitialDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest reconnect delay. Default 30 s.</summary>
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Bytes moved each way by the link benchmark. Default 4 MiB.</summary>
    public int LinkBenchmarkBytes { get; set; } = 4 << 20;

    /// <summary>
    /// How long draining may take (running work finishing and its results being acknowledged)
    /// before the node leaves anyway. Default 30 s.
    /// </summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Placement labels, such as region=eu (see <see cref="NodeOptionParser"/> for the rules). Default: none.</summary>
    public IReadOnlyDictionary<string, string> Labels { get; set; } = new Dictionary<string, string>();

    /// <summary>
    /// External engines the node serves (<c>--engine NAME=URL</c>): OpenAI-compatible servers it runs
    /// itself. Each adds the placement label <c>engine:NAME=openai</c>. Default: none.
    /// </summary>
    public IReadOnlyList<EngineEndpoint> Engines { get; set; } = [];

    /// <summary>Asking price in ledger micro-units per device-hour, 0 or more. Default 0: the network default.</summary>
    public long Price { get; set; }

    /// <summary>CPU threads libtorch uses for training; 0 (default) uses every core.</summary>
    public int TrainingThreads { get; set; }

    /// <summary>CPU threads ONNX Runtime uses per served model; 0 (default) lets it choose.</summary>
    public int InferenceThreads { get; set; }

    /// <summary>
    /// A fault the node commits on purpose, to test a network's defences (<c>--simulate-fault MODE</c>,
    /// docs/verification.md). Null (the default) for an honest node.
    /// </summary>
    public FaultSimulation? SimulateFault { get; set; }

    /// <summary>
    /// The executors the node runs leases with. Default null: the built-ins of
    /// <see cref="TaskExecutors.CreateDefault"/> (benchmark over the agent's device probe, and sleep).
    /// </summary>
    public TaskExecutors? Executors { get; set; }

    /// <summary>Throws <see cref="ArgumentException"/> when a setting is out of range; the agent calls it at start.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Coordinator);
        ArgumentNullException.ThrowIfNull(Devices);
        if (Devices.Count == 0)
        {
            throw new ArgumentException("The node must offer at least one device.");
        }

        if (Price < 0)
        {
            throw new ArgumentException($"The price must be 0 or more, not {Price}.");
        }

        NodeOptionParser.ValidateLabels(Labels ?? throw new ArgumentException("Labels must not be null."));
        NodeOptionParser.ValidateEngines(Engines ?? throw new ArgumentException("Engines must not be null."));
        if (Labels.Keys.FirstOrDefault(k => k.StartsWith(EngineNames.LabelPrefix, StringComparison.Ordinal)) is { } engineLabel)
        {
            throw new ArgumentException($"label '{engineLabel}' is reserved for engines: use --engine NAME=URL.");
        }

        if (Labels.Count + Engines.Count > NodeOptionParser.MaxLabels)
        {
            throw new ArgumentException($"a node may carry at most {NodeOptionParser.MaxLabels} labels and engines together, not {Labels.Count + Engines.Count}.");
        }
        if (DrainTimeout <= TimeSpan.Zero || ReconnectInitialDelay <= TimeSpan.Zero || ReconnectMaxDelay < ReconnectInitialDelay)
        {
            throw new ArgumentException("The drain timeout and reconnect delays must be positive, and the longest delay at least the first.");
        }

        if (LinkBenchmarkBytes <= 0)
        {
            throw new ArgumentException("The link benchmark must move at least one byte.");
        }
    }
}

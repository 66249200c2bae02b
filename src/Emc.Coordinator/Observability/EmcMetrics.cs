using Prometheus;

namespace Emc.Coordinator.Observability;

/// <summary>Prometheus instruments of the coordinator, served at /metrics.</summary>
public static class EmcMetrics
{
    public static readonly Counter Heartbeats = Metrics.CreateCounter(
        "emc_heartbeats_total", "Heartbeats received from nodes.");

    public static readonly Counter Registrations = Metrics.CreateCounter(
        "emc_registrations_total", "Node registrations by outcome.", new CounterConfiguration { LabelNames = ["result"] });

    public static readonly Gauge Sessions = Metrics.CreateGauge(
        "emc_node_sessions", "Node streams open on this coordinator.");

    public static readonly Gauge Nodes = Metrics.CreateGauge(
        "emc_nodes", "Nodes in the registry by status.", new GaugeConfiguration { LabelNames = ["status"] });
}

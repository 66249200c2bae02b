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

    public static readonly Counter SchedulerPlacements = Metrics.CreateCounter(
        "emc_scheduler_placements_total", "Tasks placed on nodes (leases granted).");

    public static readonly Gauge SchedulerQueued = Metrics.CreateGauge(
        "emc_scheduler_queued", "Items (tasks or whole gangs) waiting in the scheduler's queue.");

    public static readonly Histogram SchedulerCommitSeconds = Metrics.CreateHistogram(
        "emc_scheduler_commit_seconds", "Time to write one batch of scheduler changes.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 14) });

    public static readonly Counter SchedulerDroppedEvents = Metrics.CreateCounter(
        "emc_scheduler_dropped_events_total", "Node events dropped because the scheduler's queue was full.");
}

using Emc.Coordinator.Scheduling;
using Emc.Core.Registry;
using Microsoft.Extensions.Options;

namespace Emc.Coordinator.Registry;

/// <summary>Presence state machine of one node. Durable effects go through <see cref="NodeStateWriter"/>.</summary>
internal sealed class NodeGrain(NodeStateWriter writer, SchedulerService scheduler, TimeProvider time, IOptions<RegistryOptions> options) : Grain, INodeGrain
{
    private readonly RegistryOptions _options = options.Value;
    private string? _sessionId;
    private NodeStatus _status = NodeStatus.Disconnected;
    private long _lastSeenUnixMs;
    private IGrainTimer? _livenessTimer;

    public Task Attach(string sessionId)
    {
        _sessionId = sessionId;
        Touch(NodeStatus.Connected);
        _livenessTimer ??= this.RegisterGrainTimer(
            CheckLivenessAsync,
            new GrainTimerCreationOptions
            {
                DueTime = _options.LivenessCheckPeriod,
                Period = _options.LivenessCheckPeriod,
                KeepAlive = true,
            });
        return Task.CompletedTask;
    }

    public Task<bool> Heartbeat(string sessionId, int runningTasks)
    {
        if (sessionId != _sessionId || _status is NodeStatus.Lost or NodeStatus.Disconnected)
        {
            return Task.FromResult(false);
        }

        var status = _status == NodeStatus.Draining ? NodeStatus.Draining
            : runningTasks > 0 ? NodeStatus.Busy : NodeStatus.Connected;
        Touch(status);
        return Task.FromResult(true);
    }

    public Task Drain(string sessionId)
    {
        if (sessionId == _sessionId && _status is not (NodeStatus.Lost or NodeStatus.Disconnected))
        {
            Touch(NodeStatus.Draining);
        }

        return Task.CompletedTask;
    }

    public Task Detach(string sessionId, bool graceful)
    {
        if (sessionId == _sessionId && _status is not (NodeStatus.Lost or NodeStatus.Disconnected))
        {
            Touch(graceful ? NodeStatus.Disconnected : NodeStatus.Lost);
            StopTimer();
        }

        return Task.CompletedTask;
    }

    private Task CheckLivenessAsync(CancellationToken cancellationToken)
    {
        if (_sessionId is null || _status is NodeStatus.Lost or NodeStatus.Disconnected)
        {
            StopTimer();
            return Task.CompletedTask;
        }

        var silentFor = time.GetUtcNow().ToUnixTimeMilliseconds() - _lastSeenUnixMs;
        if (silentFor >= _options.HeartbeatTimeout.TotalMilliseconds)
        {
            // Keep the last-seen time of the last heartbeat: it says when the node was last alive.
            _status = NodeStatus.Lost;
            writer.Enqueue(new NodeStateUpdate(this.GetPrimaryKeyString(), _sessionId, _status, _lastSeenUnixMs));
            scheduler.NodeDisconnected(this.GetPrimaryKeyString(), _sessionId, $"was lost (no heartbeat for {silentFor / 1000.0:0.#} s)");
            StopTimer();
        }

        return Task.CompletedTask;
    }

    private void Touch(NodeStatus status)
    {
        _status = status;
        _lastSeenUnixMs = time.GetUtcNow().ToUnixTimeMilliseconds();
        writer.Enqueue(new NodeStateUpdate(this.GetPrimaryKeyString(), _sessionId!, status, _lastSeenUnixMs));
    }

    private void StopTimer()
    {
        _livenessTimer?.Dispose();
        _livenessTimer = null;
        if (_status is NodeStatus.Lost or NodeStatus.Disconnected)
        {
            // Nothing left to watch: let the runtime collect this activation.
            DeactivateOnIdle();
        }
    }
}

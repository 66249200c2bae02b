namespace Emc.Node.Work;

/// <summary>What an executor gets to know about the lease it runs.</summary>
/// <param name="LeaseId">The lease, "{task id}#{attempt}".</param>
/// <param name="TaskId">The task the lease is an attempt at.</param>
/// <param name="JobId">The job the task belongs to.</param>
/// <param name="Input">The task's input text, as the job gave it (often JSON).</param>
/// <param name="Device">The device to run on, normalised: "cpu", "cuda:0", ...</param>
public sealed record TaskContext(string LeaseId, string TaskId, string JobId, string Input, string Device);

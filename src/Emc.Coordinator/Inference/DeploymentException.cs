namespace Emc.Coordinator.Inference;

/// <summary>A deploy or undeploy that cannot be done; <see cref="StatusCode"/> is the HTTP status to answer with (400, 404, 409).</summary>
public sealed class DeploymentException : Exception
{
    public DeploymentException()
    {
    }

    public DeploymentException(string message)
        : base(message)
    {
    }

    public DeploymentException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public DeploymentException(int statusCode, string message)
        : base(message)
    {
        StatusCode = statusCode;
    }

    /// <summary>400 (a bad spec), 404 (no such model or deployment) or 409 (already deployed).</summary>
    public int StatusCode { get; } = 400;
}

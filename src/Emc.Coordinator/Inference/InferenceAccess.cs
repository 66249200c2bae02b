using Emc.Coordinator.Accounts;
using Emc.Core.Inference;

namespace Emc.Coordinator.Inference;

/// <summary>What a caller may do with a model name on the inference front ends.</summary>
public enum ModelAccess
{
    /// <summary>Its own model (or the operator's key).</summary>
    Allowed,

    /// <summary>No such model, as far as this caller may know.</summary>
    Unknown,

    /// <summary>Another account's model.</summary>
    Forbidden,
}

/// <summary>
/// Who may see and call a model through the Open Inference Protocol and the OpenAI-compatible API: the
/// account it is served for (<see cref="DeploymentService.ModelOwnerAsync"/>) and the operator. A model
/// name nobody owns is unknown to users. A deployed name is answered from memory, so a call on the hot
/// path costs one dictionary lookup.
/// </summary>
public sealed class InferenceAccess(DeploymentService deployments)
{
    public async ValueTask<ModelAccess> CheckAsync(Caller? caller, string model, CancellationToken cancellationToken)
    {
        if (caller is { IsOperator: true })
        {
            return ModelAccess.Allowed;
        }

        if (caller is null)
        {
            return ModelAccess.Forbidden;
        }

        var owner = await deployments.ModelOwnerAsync(model, cancellationToken);
        return owner is null ? ModelAccess.Unknown
            : owner == caller.AccountId ? ModelAccess.Allowed
            : ModelAccess.Forbidden;
    }

    /// <summary>
    /// Throws the Open Inference Protocol's error unless <paramref name="caller"/> may use the model: 404
    /// for a name it may not know of, 403 for another account's model.
    /// </summary>
    public async ValueTask EnsureAsync(Caller? caller, string model, string? version, CancellationToken cancellationToken)
    {
        switch (await CheckAsync(caller, model, cancellationToken))
        {
            case ModelAccess.Unknown:
                throw OipException.UnknownModel(model, version);
            case ModelAccess.Forbidden:
                throw new OipException(
                    OipErrorKind.Forbidden,
                    caller is null ? AccessErrors.MissingKey : AccessProblems.Message(caller, $"the model '{model}'"));
        }
    }

    /// <summary>Whether <paramref name="caller"/> may see the deployed name <paramref name="model"/> in a listing (memory only).</summary>
    public bool MayList(Caller? caller, string model) =>
        caller is { IsOperator: true } || (caller is not null && deployments.DeployedOwner(model) == caller.AccountId);
}

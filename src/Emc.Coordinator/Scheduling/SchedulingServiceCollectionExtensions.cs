using Emc.Coordinator.Gateway;
using Emc.Core.Scheduling;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Emc.Coordinator.Scheduling;

/// <summary>Registers the scheduler.</summary>
public static class SchedulingServiceCollectionExtensions
{
    /// <summary>
    /// Adds the scheduler service with its store and the stream sink. <paramref name="policy"/> names
    /// the placement policy: "spread" (default) or "pack".
    /// </summary>
    public static IServiceCollection AddEmcScheduling(this IServiceCollection services, string policy = "spread")
    {
        services.AddOptions<SchedulerOptions>().ValidateOnStart();
        services.AddSingleton<IValidateOptions<SchedulerOptions>, SchedulerOptionsValidator>();
        services.TryAddSingleton<IPlacementPolicy>(_ => PlacementPolicies.Create(policy));
        services.TryAddSingleton<ISchedulerStore>(sp => sp.GetRequiredService<SchedulerStore>());
        services.TryAddSingleton<INodeCommandSink, StreamCommandSink>();
        services.AddSingleton<SchedulerService>();
        services.AddHostedService(sp => sp.GetRequiredService<SchedulerService>());
        return services;
    }

    private sealed class SchedulerOptionsValidator : IValidateOptions<SchedulerOptions>
    {
        public ValidateOptionsResult Validate(string? name, SchedulerOptions options)
        {
            var errors = options.Validate();
            return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
        }
    }
}

/// <summary>The placement policies a coordinator can be started with.</summary>
public static class PlacementPolicies
{
    public static IReadOnlyList<string> Names { get; } = ["spread", "pack"];

    public static IPlacementPolicy Create(string name) => name switch
    {
        "spread" => new SpreadPlacementPolicy(),
        "pack" => new PackPlacementPolicy(),
        _ => throw new ArgumentException($"'{name}' is not a placement policy; use spread or pack.", nameof(name)),
    };
}

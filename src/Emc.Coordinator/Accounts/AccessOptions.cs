using System.ComponentModel.DataAnnotations;

namespace Emc.Coordinator.Accounts;

/// <summary>Keys and node signatures.</summary>
public sealed class AccessOptions
{
    /// <summary>
    /// Where the operator key is written at first start and read at later ones. Default
    /// <c>{data}/operator.key</c> (mode 0600).
    /// </summary>
    public string? OperatorKeyFile { get; set; }

    /// <summary>
    /// An operator key given by configuration (<c>EMC_OPERATOR_KEY</c>), for deployments that keep it in
    /// a secret store: it is registered as the operator's and no key file is written. Default none.
    /// </summary>
    public string? OperatorKey { get; set; }

    /// <summary>
    /// How long a checked key is trusted from memory before the database is asked again. A revocation
    /// made through this process takes effect at once whatever this is; it bounds how long another
    /// process's revocation could go unseen. Default 30 s.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan KeyCacheDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How old (or how far ahead of this clock) a node's signed request may be. Default 5 minutes.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan NodeSignatureWindow { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often a key's last use is written; uses in between are not recorded. Default 1 minute.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan LastUsedPrecision { get; set; } = TimeSpan.FromMinutes(1);
}

using System.Collections.Concurrent;
using Emc.Coordinator.Persistence;
using Emc.Core.Accounts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Emc.Coordinator.Accounts;

/// <summary>Why a key was refused, in words for the client.</summary>
public enum KeyRefusal
{
    None,
    Malformed,
    Unknown,
    Revoked,
}

/// <summary>What revoking a key did.</summary>
public enum RevokeOutcome
{
    Revoked,
    AlreadyRevoked,
    NotFound,
}

/// <summary>
/// Accounts and their API keys in the database, and the check of a presented key. Checked keys are
/// kept in memory for <see cref="AccessOptions.KeyCacheDuration"/>; a revocation through this store
/// drops the key from memory before it returns, so a revoked key is refused at once.
/// </summary>
public sealed class AccountStore(IDbContextFactory<EmcDbContext> factory, TimeProvider time, IOptions<AccessOptions> options)
{
    private readonly ConcurrentDictionary<string, CachedKey> _keys = new(StringComparer.Ordinal);
    private readonly Lock _revocations = new();
    private long _revocationEpoch;

    /// <summary>Checks a presented key: the caller it stands for, or why it is refused. Records its last use.</summary>
    public async Task<(Caller? Caller, KeyRefusal Refusal)> AuthenticateAsync(string presented, CancellationToken cancellationToken)
    {
        if (!ApiKeys.TryParse(presented, out var id))
        {
            return (null, KeyRefusal.Malformed);
        }

        var now = time.GetUtcNow();
        if (!_keys.TryGetValue(id, out var entry) || now - entry.LoadedAt > options.Value.KeyCacheDuration)
        {
            long epoch;
            lock (_revocations)
            {
                epoch = _revocationEpoch;
            }

            entry = await LoadAsync(id, now, cancellationToken);
            lock (_revocations)
            {
                // A revocation that ran while this read was under way may have been missed by it: keep
                // nothing then, so the next request reads again.
                if (entry is null)
                {
                    _keys.TryRemove(id, out _);
                }
                else if (epoch == _revocationEpoch)
                {
                    _keys[id] = entry;
                }
            }

            if (entry is null)
            {
                return (null, KeyRefusal.Unknown);
            }
        }

        if (!ApiKeys.Matches(presented, entry.Hash))
        {
            return (null, KeyRefusal.Unknown);
        }

        if (entry.Revoked)
        {
            return (null, KeyRefusal.Revoked);
        }

        var lastUsed = Interlocked.Read(ref entry.LastUsedUnixMs);
        var nowMs = now.ToUnixTimeMilliseconds();
        if (nowMs - lastUsed >= options.Value.LastUsedPrecision.TotalMilliseconds
            && Interlocked.CompareExchange(ref entry.LastUsedUnixMs, nowMs, lastUsed) == lastUsed)
        {
            // Advisory: a request is not failed because its key's last use could not be written.
            try
            {
                await using var db = await factory.CreateDbContextAsync(CancellationToken.None);
                await db.ApiKeys.Where(k => k.Id == id).ExecuteUpdateAsync(set => set.SetProperty(k => k.LastUsedAtUnixMs, nowMs), CancellationToken.None);
            }
            catch (System.Data.Common.DbException)
            {
                Interlocked.CompareExchange(ref entry.LastUsedUnixMs, lastUsed, nowMs);
            }
        }

        return (new Caller(entry.AccountId, entry.Role, id), KeyRefusal.None);
    }

    public async Task<AccountView?> GetAccountAsync(string id, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var row = await db.Accounts.AsNoTracking().FirstOrDefaultAsync(a => a.Id == id, cancellationToken);
        return row is null ? null : View(row);
    }

    /// <summary>Whether an operator account exists.</summary>
    public async Task<bool> HasOperatorAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.Accounts.AnyAsync(a => a.Role == AccountRoles.Operator, cancellationToken);
    }

    /// <summary>Makes the operator account unless it exists.</summary>
    public async Task EnsureOperatorAccountAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        if (!await db.Accounts.AnyAsync(a => a.Id == AccountIds.Operator, cancellationToken))
        {
            db.Accounts.Add(new AccountRow
            {
                Id = AccountIds.Operator,
                Name = AccountIds.Operator,
                Role = AccountRoles.Operator,
                CreatedAtUnixMs = time.GetUtcNow().ToUnixTimeMilliseconds(),
            });
            await db.SaveChangesAsync(cancellationToken);
        }
    }

    /// <summary>
    /// Makes a user account and its first key in one transaction; the error, and whether it is a conflict
    /// (409) rather than bad input (400), when it cannot.
    /// </summary>
    public async Task<(CreatedAccount? Created, string? Error, bool Conflict)> CreateUserAsync(string? name, CancellationToken cancellationToken)
    {
        if (!AccountIds.IsValid(name))
        {
            return (null, $"'{name}' is not an account name: {AccountIds.Rule}", false);
        }

        if (AccountIds.Reserved.Contains(name))
        {
            return (null, $"'{name}' is reserved; choose another name", true);
        }

        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        if (await db.Accounts.AnyAsync(a => a.Id == name, cancellationToken))
        {
            return (null, $"an account named '{name}' exists", true);
        }

        // Jobs name their fair-share account freely; a new account must not adopt jobs it did not submit.
        if (await db.Jobs.AnyAsync(j => j.Account == name, cancellationToken) || await db.TrainingJobs.AnyAsync(j => j.Account == name, cancellationToken))
        {
            return (null, $"'{name}' is the account of jobs submitted before it existed; choose another name", true);
        }

        var now = time.GetUtcNow();
        var account = new AccountRow { Id = name, Name = name, Role = AccountRoles.User, CreatedAtUnixMs = now.ToUnixTimeMilliseconds() };
        db.Accounts.Add(account);
        var (keyRow, key) = NewKey(name, "", now);
        db.ApiKeys.Add(keyRow);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }
        catch (DbUpdateException)
        {
            return (null, $"an account named '{name}' was made at the same time", true);
        }

        return (new CreatedAccount(View(account), new CreatedApiKey(keyRow.Id, name, "", key, now)), null, false);
    }

    /// <summary>Makes a new key for an existing account; null when the account does not exist.</summary>
    public async Task<CreatedApiKey?> CreateKeyAsync(string accountId, string name, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        if (!await db.Accounts.AnyAsync(a => a.Id == accountId, cancellationToken))
        {
            return null;
        }

        var now = time.GetUtcNow();
        var (row, key) = NewKey(accountId, name, now);
        db.ApiKeys.Add(row);
        await db.SaveChangesAsync(cancellationToken);
        return new CreatedApiKey(row.Id, accountId, name, key, now);
    }

    /// <summary>
    /// Registers a key made elsewhere (the operator key from configuration) for <paramref name="accountId"/>.
    /// Returns null when it is registered now or was already, else why it cannot be used.
    /// </summary>
    public async Task<string?> RegisterKeyAsync(string accountId, string key, string name, CancellationToken cancellationToken)
    {
        if (!ApiKeys.TryParse(key, out var id))
        {
            return $"it is not an EMC key (emc_ followed by {ApiKeys.IdLength} hex digits, '_' and {ApiKeys.SecretLength} base64url characters)";
        }

        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var existing = await db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.Id == id, cancellationToken);
        if (existing is not null)
        {
            return !ApiKeys.Matches(key, existing.Hash) ? $"another key with the id {id} is registered"
                : existing.AccountId != accountId ? $"it is a key of the account '{existing.AccountId}'"
                : existing.RevokedAtUnixMs is not null ? "it was revoked"
                : null;
        }

        db.ApiKeys.Add(new ApiKeyRow { Id = id, AccountId = accountId, Name = name, Hash = ApiKeys.Hash(key), CreatedAtUnixMs = time.GetUtcNow().ToUnixTimeMilliseconds() });
        await db.SaveChangesAsync(cancellationToken);
        return null;
    }

    /// <summary>Whether <paramref name="key"/> is a valid, unrevoked key of <paramref name="accountId"/>.</summary>
    public async Task<bool> IsValidKeyOfAsync(string accountId, string key, CancellationToken cancellationToken)
    {
        if (!ApiKeys.TryParse(key, out var id))
        {
            return false;
        }

        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var row = await db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.Id == id, cancellationToken);
        return row is { RevokedAtUnixMs: null } && row.AccountId == accountId && ApiKeys.Matches(key, row.Hash);
    }

    /// <summary>The keys of an account, newest first.</summary>
    public async Task<IReadOnlyList<ApiKeyView>> ListKeysAsync(string accountId, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var rows = await db.ApiKeys.AsNoTracking().Where(k => k.AccountId == accountId).ToListAsync(cancellationToken);
        return [.. rows.OrderByDescending(k => k.CreatedAtUnixMs).ThenBy(k => k.Id, StringComparer.Ordinal).Select(View)];
    }

    /// <summary>The key, if it is one of <paramref name="accountId"/>'s.</summary>
    public async Task<ApiKeyView?> GetKeyAsync(string accountId, string keyId, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var row = await db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.Id == keyId && k.AccountId == accountId, cancellationToken);
        return row is null ? null : View(row);
    }

    /// <summary>Revokes a key of <paramref name="accountId"/>; from the moment this returns, the key opens no request.</summary>
    public async Task<RevokeOutcome> RevokeAsync(string accountId, string keyId, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        int changed;
        await using (var db = await factory.CreateDbContextAsync(cancellationToken))
        {
            changed = await db.ApiKeys
                .Where(k => k.Id == keyId && k.AccountId == accountId && k.RevokedAtUnixMs == null)
                .ExecuteUpdateAsync(set => set.SetProperty(k => k.RevokedAtUnixMs, now), CancellationToken.None);
            if (changed == 0)
            {
                return await db.ApiKeys.AnyAsync(k => k.Id == keyId && k.AccountId == accountId, cancellationToken)
                    ? RevokeOutcome.AlreadyRevoked
                    : RevokeOutcome.NotFound;
            }
        }

        lock (_revocations)
        {
            _revocationEpoch++;
            _keys.TryRemove(keyId, out _);
        }

        return RevokeOutcome.Revoked;
    }

    private async Task<CachedKey?> LoadAsync(string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var found = await (from k in db.ApiKeys.AsNoTracking()
                           join a in db.Accounts.AsNoTracking() on k.AccountId equals a.Id
                           where k.Id == id
                           select new { k.Hash, k.AccountId, a.Role, k.RevokedAtUnixMs, k.LastUsedAtUnixMs }).FirstOrDefaultAsync(cancellationToken);
        return found is null
            ? null
            : new CachedKey(found.Hash, found.AccountId, found.Role, found.RevokedAtUnixMs is not null, now) { LastUsedUnixMs = found.LastUsedAtUnixMs ?? 0 };
    }

    private static (ApiKeyRow Row, string Key) NewKey(string accountId, string name, DateTimeOffset now)
    {
        var (id, key) = ApiKeys.Create();
        return (new ApiKeyRow { Id = id, AccountId = accountId, Name = name, Hash = ApiKeys.Hash(key), CreatedAtUnixMs = now.ToUnixTimeMilliseconds() }, key);
    }

    private static AccountView View(AccountRow row) =>
        new(row.Id, row.Name, row.Role, DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAtUnixMs));

    private static ApiKeyView View(ApiKeyRow row) => new(
        row.Id,
        row.AccountId,
        row.Name,
        DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAtUnixMs),
        row.LastUsedAtUnixMs is { } used ? DateTimeOffset.FromUnixTimeMilliseconds(used) : null,
        row.RevokedAtUnixMs is { } revoked ? DateTimeOffset.FromUnixTimeMilliseconds(revoked) : null);

    private sealed class CachedKey(string hash, string accountId, string role, bool revoked, DateTimeOffset loadedAt)
    {
        public string Hash { get; } = hash;
        public string AccountId { get; } = accountId;
        public string Role { get; } = role;
        public bool Revoked { get; } = revoked;
        public DateTimeOffset LoadedAt { get; } = loadedAt;

        // When the last use was written (milliseconds); a field so that Interlocked can claim the next write.
        public long LastUsedUnixMs;
    }
}

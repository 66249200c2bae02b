namespace Emc.Core.Scheduling;

/// <summary>
/// Weighted fair queueing in two levels, by stride scheduling: priority classes share by class
/// weight, and within a class accounts share by account weight. Each level keeps a virtual time
/// ("pass"); the lowest pass goes next and pays cost ÷ weight. A class or account that was idle
/// starts at the current virtual time, so idleness earns no burst later. Within an account the
/// oldest item goes first. Items whose shape cannot be placed right now are skipped for the pass,
/// so one blocked demand never holds up the rest (no head-of-line blocking).
/// </summary>
internal sealed class FairShareQueue(SchedulerOptions options)
{
    private readonly ClassQueue[] _classes = [.. Enum.GetValues<PriorityClass>().Select(priority => new ClassQueue(priority, options.ClassWeights[priority]))];
    private readonly Dictionary<string, double> _accountWeights = new(StringComparer.Ordinal);
    private double _virtualTime;

    public int Count { get; private set; }

    public double AccountWeight(string account) =>
        _accountWeights.TryGetValue(account, out var weight) ? weight : options.DefaultAccountWeight;

    public IReadOnlyDictionary<string, double> AccountWeights => _accountWeights;

    public void SetAccountWeight(string account, double weight)
    {
        _accountWeights[account] = weight;
        foreach (var cls in _classes)
        {
            if (cls.Accounts.TryGetValue(account, out var queue))
            {
                queue.Weight = weight;
            }
        }
    }

    /// <summary>Adds an item at the back of its shape's line, or at the front for a reissue.</summary>
    public void Enqueue(QueueItem item, bool front)
    {
        var cls = _classes[(int)item.Job.Priority];
        if (!cls.Accounts.TryGetValue(item.Job.Account, out var account))
        {
            account = new AccountQueue(item.Job.Account, AccountWeight(item.Job.Account));
            cls.Accounts.Add(item.Job.Account, account);
        }

        if (cls.Count == 0)
        {
            cls.Pass = Math.Max(cls.Pass, _virtualTime);
        }

        if (account.Count == 0)
        {
            account.Pass = Math.Max(account.Pass, cls.VirtualTime);
            cls.Active.Add(account);
        }

        item.QueuedShape = item.ShapeKey;
        if (!account.ByShape.TryGetValue(item.QueuedShape, out var line))
        {
            line = new LinkedList<QueueItem>();
            account.ByShape.Add(item.QueuedShape, line);
        }

        if (front)
        {
            line.AddFirst(item);
        }
        else
        {
            line.AddLast(item);
        }

        item.InQueue = true;
        account.Count++;
        cls.Count++;
        Count++;
    }

    /// <summary>Takes an item out without placing it (cancelled); its node in the line is skipped later.</summary>
    public void Remove(QueueItem item)
    {
        if (!item.InQueue)
        {
            return;
        }

        item.InQueue = false;
        var cls = _classes[(int)item.Job.Priority];
        var account = cls.Accounts[item.Job.Account];
        Decrement(cls, account);
    }

    /// <summary>The item fair share serves next, skipping shapes in <paramref name="blocked"/>; null when none.</summary>
    public QueueItem? Peek(HashSet<string> blocked)
    {
        ClassQueue? bestClass = null;
        QueueItem? bestItem = null;
        AccountQueue? bestAccount = null;
        // Highest class first, so equal passes go to the higher class.
        for (var i = _classes.Length - 1; i >= 0; i--)
        {
            var cls = _classes[i];
            if (cls.Count == 0 || (bestClass is not null && cls.Pass >= bestClass.Pass))
            {
                continue;
            }

            var (account, item) = PeekClass(cls, blocked);
            if (item is not null)
            {
                bestClass = cls;
                bestAccount = account;
                bestItem = item;
            }
        }

        _lastAccount = bestAccount;
        _lastClass = bestClass;
        return bestItem;
    }

    private AccountQueue? _lastAccount;
    private ClassQueue? _lastClass;

    /// <summary>Takes the item <see cref="Peek"/> returned and charges its account and class.</summary>
    public void Take(QueueItem item)
    {
        var cls = _lastClass ?? throw new InvalidOperationException("Take must follow Peek.");
        var account = _lastAccount!;
        var line = account.ByShape[item.QueuedShape];
        if (!ReferenceEquals(line.First?.Value, item))
        {
            throw new InvalidOperationException("Take must follow Peek.");
        }

        line.RemoveFirst();
        item.InQueue = false;
        _virtualTime = Math.Max(_virtualTime, cls.Pass);
        cls.VirtualTime = Math.Max(cls.VirtualTime, account.Pass);
        var cost = Math.Max(1, item.Cost);
        cls.Pass += cost / cls.Weight;
        account.Pass += cost / account.Weight;
        Decrement(cls, account);
        _lastClass = null;
        _lastAccount = null;
    }

    private static (AccountQueue? Account, QueueItem? Item) PeekClass(ClassQueue cls, HashSet<string> blocked)
    {
        AccountQueue? bestAccount = null;
        QueueItem? bestItem = null;
        foreach (var account in cls.Active)
        {
            if (bestAccount is not null
                && (account.Pass > bestAccount.Pass
                    || (account.Pass == bestAccount.Pass && string.CompareOrdinal(account.Name, bestAccount.Name) > 0)))
            {
                continue;
            }

            var item = OldestHead(account, blocked);
            if (item is not null)
            {
                bestAccount = account;
                bestItem = item;
            }
        }

        return (bestAccount, bestItem);
    }

    private static QueueItem? OldestHead(AccountQueue account, HashSet<string> blocked)
    {
        QueueItem? oldest = null;
        List<string>? empty = null;
        foreach (var (shape, line) in account.ByShape)
        {
            // Drop entries that were cancelled while queued.
            while (line.First is { } first && !first.Value.InQueue)
            {
                line.RemoveFirst();
            }

            if (line.First is null)
            {
                (empty ??= []).Add(shape);
                continue;
            }

            if (blocked.Contains(shape))
            {
                continue;
            }

            if (oldest is null || line.First.Value.Sequence < oldest.Sequence)
            {
                oldest = line.First.Value;
            }
        }

        if (empty is not null)
        {
            foreach (var shape in empty)
            {
                account.ByShape.Remove(shape);
            }
        }

        return oldest;
    }

    private void Decrement(ClassQueue cls, AccountQueue account)
    {
        account.Count--;
        cls.Count--;
        Count--;
        if (account.Count == 0)
        {
            cls.Active.Remove(account);
            account.ByShape.Clear();
        }
    }

    private sealed class ClassQueue(PriorityClass priority, double weight)
    {
        public PriorityClass Priority { get; } = priority;
        public double Weight { get; } = weight;
        public double Pass { get; set; }
        public double VirtualTime { get; set; }
        public int Count { get; set; }
        public Dictionary<string, AccountQueue> Accounts { get; } = new(StringComparer.Ordinal);
        public List<AccountQueue> Active { get; } = [];
    }

    private sealed class AccountQueue(string name, double weight)
    {
        public string Name { get; } = name;
        public double Weight { get; set; } = weight;
        public double Pass { get; set; }
        public int Count { get; set; }
        public Dictionary<string, LinkedList<QueueItem>> ByShape { get; } = new(StringComparer.Ordinal);
    }
}

using System.Globalization;
using System.Text;

namespace Emc.Coordinator.Ledger;

/// <summary>One answered request of a paid deployment, as the usage journal holds it.</summary>
/// <param name="Sequence">Its place in the journal, from 1, never reused.</param>
/// <param name="Escrow">The escrow that pays for it (the deployment's <c>escrow:deployment:…</c> name).</param>
/// <param name="Node">The node that answered, lower-case 0x address.</param>
/// <param name="Tokens">Prompt and completion tokens of a language model's answer; 0 for a tensor request.</param>
public sealed record UsageRecord(long Sequence, string Escrow, string Node, long Tokens);

/// <summary>A batch of usage cut from the journal for posting: its number, and the records it holds.</summary>
/// <param name="Number">The batch number, from 1: it goes into every ledger key the batch posts under.</param>
/// <param name="Records">The records of the batch, in journal order.</param>
/// <param name="Convicted">The (escrow, node) pairs proven faulty before the batch was cut: their records are not paid.</param>
public sealed record UsageBatch(long Number, IReadOnlyList<UsageRecord> Records, IReadOnlySet<(string Escrow, string Node)> Convicted);

/// <summary>
/// The append-only journal of paid inference: every answered request of a paid deployment is written here
/// before its answer leaves the coordinator, and reaches the ledger later in batches. A line is one write
/// system call, so a coordinator killed at any moment leaves whole lines and at most one torn last line,
/// which opening drops (its request's answer had not been sent).
/// </summary>
/// <remarks>
/// <para>Lines, in files <c>usage-NNNNNN.log</c>:</para>
/// <list type="bullet">
/// <item><c>u SEQ ESCROW NODE TOKENS</c>: an answered request.</item>
/// <item><c>b BATCH TO</c>: batch BATCH holds every record after the previous batch's TO up to TO; written (and
/// flushed to disk) before any of its payments is posted, so a restart posts the same batch under the same keys.</item>
/// <item><c>d BATCH</c>: every payment of BATCH is in the ledger.</item>
/// <item><c>x ESCROW NODE</c>: NODE was proven to have answered wrongly for ESCROW's deployment; its records in
/// batches cut after this line are not paid.</item>
/// <item><c>s NEXTSEQ NEXTBATCH</c>: the counters, at the head of a new file once older files are dropped.</item>
/// </list>
/// <para>
/// Writes reach the operating system at once (they survive the process) and the disk at every batch mark
/// (they survive the machine up to the last second or so of requests).
/// </para>
/// </remarks>
public sealed class UsageJournal : IDisposable
{
    /// <summary>The size past which a fully posted journal file is replaced by a fresh one.</summary>
    public const long DefaultSegmentBytes = 16L << 20;

    private readonly Lock _lock = new();
    private readonly string _directory;
    private readonly long _segmentBytes;
    private readonly List<UsageRecord> _pending = [];
    private readonly HashSet<(string Escrow, string Node)> _convicted = [];
    private FileStream _file;
    private int _segment;
    private long _nextSequence = 1;
    private long _nextBatch = 1;

    private UsageJournal(string directory, long segmentBytes, FileStream file, int segment)
    {
        _directory = directory;
        _segmentBytes = segmentBytes;
        _file = file;
        _segment = segment;
    }

    /// <summary>A batch that was cut but whose payments may not all be in the ledger: post it again (same keys) before anything else.</summary>
    public UsageBatch? Unfinished { get; private set; }

    /// <summary>How many records wait for the next batch.</summary>
    public int PendingCount
    {
        get
        {
            lock (_lock)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>The records waiting for the next batch, oldest first.</summary>
    public IReadOnlyList<UsageRecord> Pending
    {
        get
        {
            lock (_lock)
            {
                return [.. _pending];
            }
        }
    }

    /// <summary>
    /// Opens the journal in <paramref name="directory"/> (made if missing): reads every file, drops a torn
    /// last line, and finds the records not yet batched and the batch, if any, that was cut but not finished.
    /// </summary>
    public static UsageJournal Open(string directory, long segmentBytes = DefaultSegmentBytes)
    {
        Directory.CreateDirectory(directory);
        var segments = Directory.GetFiles(directory, "usage-*.log")
            .Select(path => (Path: path, Number: int.TryParse(Path.GetFileNameWithoutExtension(path)["usage-".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : -1))
            .Where(s => s.Number >= 0)
            .OrderBy(s => s.Number)
            .ToList();

        var state = new ReadState();
        for (var i = 0; i < segments.Count; i++)
        {
            Read(segments[i].Path, state, last: i == segments.Count - 1);
        }

        var number = segments.Count == 0 ? 1 : segments[^1].Number;
        var file = OpenSegment(directory, number);
        var journal = new UsageJournal(directory, segmentBytes, file, number)
        {
            _nextSequence = state.NextSequence,
            _nextBatch = state.NextBatch,
        };
        journal._pending.AddRange(state.Records.Where(r => r.Sequence > state.BatchedTo));
        journal._convicted.UnionWith(state.Convicted);
        if (state.OpenBatch is { } open)
        {
            journal.Unfinished = new UsageBatch(open.Number, [.. state.Records.Where(r => r.Sequence > open.From && r.Sequence <= open.To)], open.Convicted);
        }

        return journal;
    }

    /// <summary>Appends one answered request; returns its record. The line is with the operating system when this returns.</summary>
    public UsageRecord Append(string escrow, string node, long tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        lock (_lock)
        {
            var record = new UsageRecord(_nextSequence, escrow, node, tokens);
            Write($"u {record.Sequence.ToString(CultureInfo.InvariantCulture)} {escrow} {node} {tokens.ToString(CultureInfo.InvariantCulture)}\n", flush: false);
            _nextSequence++;
            _pending.Add(record);
            return record;
        }
    }

    /// <summary>Records that <paramref name="node"/> answered wrongly for <paramref name="escrow"/>'s deployment: its records in later batches go unpaid.</summary>
    public void Convict(string escrow, string node)
    {
        lock (_lock)
        {
            if (_convicted.Add((escrow, node)))
            {
                Write($"x {escrow} {node}\n", flush: true);
            }
        }
    }

    /// <summary>Whether <paramref name="node"/> was convicted for <paramref name="escrow"/>.</summary>
    public bool IsConvicted(string escrow, string node)
    {
        lock (_lock)
        {
            return _convicted.Contains((escrow, node));
        }
    }

    /// <summary>
    /// Cuts the records waiting into a batch and writes (and flushes to disk) its mark; null when nothing waits
    /// or an unfinished batch must be posted first.
    /// </summary>
    public UsageBatch? Cut()
    {
        lock (_lock)
        {
            if (_pending.Count == 0 || Unfinished is not null)
            {
                return null;
            }

            var batch = new UsageBatch(_nextBatch, [.. _pending], new HashSet<(string, string)>(_convicted));
            Write($"b {batch.Number.ToString(CultureInfo.InvariantCulture)} {_pending[^1].Sequence.ToString(CultureInfo.InvariantCulture)}\n", flush: true);
            _nextBatch++;
            _pending.Clear();
            Unfinished = batch;
            return batch;
        }
    }

    /// <summary>Marks <paramref name="batch"/> as fully in the ledger; starts a fresh file once the current one is large.</summary>
    public void Finish(UsageBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        lock (_lock)
        {
            if (Unfinished?.Number != batch.Number)
            {
                throw new InvalidOperationException($"batch {batch.Number} is not the unfinished batch");
            }

            Write($"d {batch.Number.ToString(CultureInfo.InvariantCulture)}\n", flush: false);
            Unfinished = null;
            if (_file.Length >= _segmentBytes && _pending.Count == 0)
            {
                Rotate();
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _file.Dispose();
        }
    }

    private void Write(string line, bool flush)
    {
        var bytes = Encoding.ASCII.GetBytes(line);
        _file.Write(bytes);
        if (flush)
        {
            _file.Flush(flushToDisk: true);
        }
    }

    /// <summary>Starts file N+1 with the counters and the convictions, then drops the older files: every record in them is posted.</summary>
    private void Rotate()
    {
        var next = OpenSegment(_directory, _segment + 1);
        var head = new StringBuilder();
        head.Append(CultureInfo.InvariantCulture, $"s {_nextSequence} {_nextBatch}\n");
        foreach (var (escrow, node) in _convicted)
        {
            head.Append(CultureInfo.InvariantCulture, $"x {escrow} {node}\n");
        }

        next.Write(Encoding.ASCII.GetBytes(head.ToString()));
        next.Flush(flushToDisk: true);
        _file.Dispose();
        _file = next;
        _segment++;
        foreach (var old in Directory.GetFiles(_directory, "usage-*.log"))
        {
            if (!string.Equals(Path.GetFileName(old), SegmentName(_segment), StringComparison.Ordinal))
            {
                File.Delete(old);
            }
        }
    }

    private static string SegmentName(int number) => $"usage-{number.ToString("D6", CultureInfo.InvariantCulture)}.log";

    private static FileStream OpenSegment(string directory, int number) =>
        new(Path.Combine(directory, SegmentName(number)), FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 0);

    private static void Read(string path, ReadState state, bool last)
    {
        var bytes = File.ReadAllBytes(path);
        var text = Encoding.ASCII.GetString(bytes);
        var end = text.LastIndexOf('\n') + 1;
        if (end < text.Length)
        {
            if (!last)
            {
                throw new InvalidDataException($"{path} ends in a torn line, but it is not the newest journal file");
            }

            // A write the process did not finish: its request was never answered. Drop it.
            using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
            file.SetLength(end);
        }

        var lineNumber = 0;
        foreach (var line in text[..end].Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            lineNumber++;
            if (!state.Apply(line.Split(' ')))
            {
                throw new InvalidDataException($"{path}:{lineNumber}: not a usage journal line: '{(line.Length > 80 ? line[..80] : line)}'");
            }
        }
    }

    private static bool TryLong(string text, out long value) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);

    /// <summary>What reading the files found so far.</summary>
    private sealed class ReadState
    {
        public List<UsageRecord> Records { get; } = [];

        public HashSet<(string Escrow, string Node)> Convicted { get; } = [];

        public long NextSequence { get; private set; } = 1;

        public long NextBatch { get; private set; } = 1;

        /// <summary>The last sequence inside a cut batch.</summary>
        public long BatchedTo { get; private set; }

        public (long Number, long From, long To, IReadOnlySet<(string, string)> Convicted)? OpenBatch { get; private set; }

        public bool Apply(string[] parts)
        {
            switch (parts)
            {
                case ["u", var seq, var escrow, var node, var tokens] when TryLong(seq, out var s) && s >= NextSequence && TryLong(tokens, out var t):
                    Records.Add(new UsageRecord(s, escrow, node, t));
                    NextSequence = s + 1;
                    return true;
                case ["b", var batch, var to] when TryLong(batch, out var b) && TryLong(to, out var upTo) && upTo >= BatchedTo:
                    OpenBatch = (b, BatchedTo, upTo, new HashSet<(string, string)>(Convicted));
                    BatchedTo = upTo;
                    NextBatch = b + 1;

                    // Records of earlier batches are done with: keep only what this batch and later ones need.
                    Records.RemoveAll(r => r.Sequence <= OpenBatch.Value.From);
                    return true;
                case ["d", var batch] when TryLong(batch, out var b):
                    if (OpenBatch?.Number == b)
                    {
                        Records.RemoveAll(r => r.Sequence <= OpenBatch.Value.To);
                        OpenBatch = null;
                    }

                    return true;
                case ["x", var escrow, var node]:
                    Convicted.Add((escrow, node));
                    return true;
                case ["s", var seq, var batch] when TryLong(seq, out var s) && TryLong(batch, out var b):
                    NextSequence = Math.Max(NextSequence, s);
                    NextBatch = Math.Max(NextBatch, b);
                    BatchedTo = Math.Max(BatchedTo, s - 1);
                    return true;
                default:
                    return false;
            }
        }
    }
}

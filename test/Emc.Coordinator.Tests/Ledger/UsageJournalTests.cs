using System.Text;
using Emc.Coordinator.Ledger;

namespace Emc.Coordinator.Tests.Ledger;

/// <summary>The usage journal: what a coordinator stopped at any line finds when it opens the journal again.</summary>
public sealed class UsageJournalTests : IDisposable
{
    private const string Node = "0x00000000000000000000000000000000000000aa";
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "emc-journal-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void RecordsNotYetBatched_ArePendingAfterReopening_WithTheirSequenceNumbers()
    {
        using (var journal = UsageJournal.Open(_directory))
        {
            Assert.Equal(1, journal.Append("d-v1.1", Node, 0).Sequence);
            Assert.Equal(2, journal.Append("d-v1.1", Node, 17).Sequence);
        }

        using var reopened = UsageJournal.Open(_directory);
        Assert.Null(reopened.Unfinished);
        Assert.Equal([new UsageRecord(1, "d-v1.1", Node, 0), new UsageRecord(2, "d-v1.1", Node, 17)], reopened.Pending);
        Assert.Equal(3, reopened.Append("d-v1.1", Node, 1).Sequence);
    }

    [Fact]
    public void ABatchCutButNotFinished_ComesBackWithTheSameNumberAndRecords_AndLaterRecordsStayPending()
    {
        UsageBatch cut;
        using (var journal = UsageJournal.Open(_directory))
        {
            journal.Append("a.1", Node, 0);
            journal.Append("b.1", Node, 5);
            cut = journal.Cut()!;
            Assert.Null(journal.Cut());
            journal.Append("a.1", Node, 0);
        }

        using var reopened = UsageJournal.Open(_directory);
        var unfinished = reopened.Unfinished!;
        Assert.Equal(cut.Number, unfinished.Number);
        Assert.Equal(cut.Records, unfinished.Records);
        Assert.Equal([new UsageRecord(3, "a.1", Node, 0)], reopened.Pending);

        // Nothing new is cut until the unfinished batch is finished; then the next number follows.
        Assert.Null(reopened.Cut());
        reopened.Finish(unfinished);
        var next = reopened.Cut()!;
        Assert.Equal(cut.Number + 1, next.Number);
        Assert.Equal([new UsageRecord(3, "a.1", Node, 0)], next.Records);
    }

    [Fact]
    public void AFinishedBatch_IsNeitherUnfinishedNorPendingAfterReopening()
    {
        using (var journal = UsageJournal.Open(_directory))
        {
            journal.Append("a.1", Node, 0);
            journal.Finish(journal.Cut()!);
        }

        using var reopened = UsageJournal.Open(_directory);
        Assert.Null(reopened.Unfinished);
        Assert.Empty(reopened.Pending);
        Assert.Equal(2, reopened.Append("a.1", Node, 0).Sequence);
        Assert.Equal(2, reopened.Cut()!.Number);
    }

    [Fact]
    public void ATornLastLine_IsDropped_AndTheFileCutBackToItsLastWholeLine()
    {
        using (var journal = UsageJournal.Open(_directory))
        {
            journal.Append("a.1", Node, 0);
        }

        var file = Directory.GetFiles(_directory).Single();
        var whole = new FileInfo(file).Length;
        File.AppendAllText(file, "u 2 a.1 0x0000", Encoding.ASCII);

        using var reopened = UsageJournal.Open(_directory);
        Assert.Equal([new UsageRecord(1, "a.1", Node, 0)], reopened.Pending);
        Assert.Equal(whole, new FileInfo(file).Length);
        Assert.Equal(2, reopened.Append("a.1", Node, 0).Sequence);
    }

    [Fact]
    public void AGarbledLine_InTheMiddle_RefusesToOpen_NamingTheLine()
    {
        using (var journal = UsageJournal.Open(_directory))
        {
            journal.Append("a.1", Node, 0);
        }

        var file = Directory.GetFiles(_directory).Single();
        File.AppendAllText(file, "u 2 a.1\nu 3 a.1 " + Node + " 0\n", Encoding.ASCII);
        var error = Assert.Throws<InvalidDataException>(() => UsageJournal.Open(_directory));
        Assert.Contains(":2:", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Convictions_ApplyToBatchesCutAfterThem_AndSurviveReopening()
    {
        using (var journal = UsageJournal.Open(_directory))
        {
            journal.Append("a.1", Node, 0);
            var before = journal.Cut()!;
            Assert.Empty(before.Convicted);
            journal.Finish(before);
            journal.Convict("a.1", Node);
            journal.Append("a.1", Node, 0);
            Assert.Contains(("a.1", Node), journal.Cut()!.Convicted);
        }

        using var reopened = UsageJournal.Open(_directory);
        Assert.True(reopened.IsConvicted("a.1", Node));
        Assert.Contains(("a.1", Node), reopened.Unfinished!.Convicted);
        Assert.False(reopened.IsConvicted("b.1", Node));
    }

    [Fact]
    public void AFullFile_IsReplacedOnceEverythingInItIsPosted_KeepingCountersAndConvictions()
    {
        using (var journal = UsageJournal.Open(_directory, segmentBytes: 200))
        {
            journal.Convict("bad.1", Node);
            for (var i = 0; i < 10; i++)
            {
                journal.Append("a.1", Node, i);
            }

            journal.Finish(journal.Cut()!);
        }

        var files = Directory.GetFiles(_directory);
        Assert.Equal("usage-000002.log", Path.GetFileName(Assert.Single(files)));

        using var reopened = UsageJournal.Open(_directory, segmentBytes: 200);
        Assert.Empty(reopened.Pending);
        Assert.Null(reopened.Unfinished);
        Assert.True(reopened.IsConvicted("bad.1", Node));
        Assert.Equal(11, reopened.Append("a.1", Node, 0).Sequence);
        Assert.Equal(2, reopened.Cut()!.Number);
    }
}

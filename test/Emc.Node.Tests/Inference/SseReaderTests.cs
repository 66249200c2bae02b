using System.Text;
using Emc.Node.Inference;

namespace Emc.Node.Tests.Inference;

public sealed class SseReaderTests
{
    [Fact]
    public async Task ReadEvent_DataLinesCommentsAndOtherFields_YieldsEachEventsData()
    {
        var text = ": keep-alive\r\nevent: message\r\ndata: {\"a\":1}\r\n\r\ndata:first\ndata: second\nid: 7\n\n\n\ndata: [DONE]\n\n";
        var reader = new SseReader(new MemoryStream(Encoding.UTF8.GetBytes(text)), 1024);

        Assert.Equal("{\"a\":1}", Encoding.UTF8.GetString((await reader.ReadEventAsync(CancellationToken.None))!));
        Assert.Equal("first\nsecond", Encoding.UTF8.GetString((await reader.ReadEventAsync(CancellationToken.None))!));
        Assert.Equal("[DONE]", Encoding.UTF8.GetString((await reader.ReadEventAsync(CancellationToken.None))!));
        Assert.Null(await reader.ReadEventAsync(CancellationToken.None));
    }

    [Fact]
    public async Task ReadEvent_UnfinishedLastEvent_IsDropped()
    {
        var reader = new SseReader(new MemoryStream("data: whole\n\ndata: cut"u8.ToArray()), 1024);

        Assert.Equal("whole", Encoding.UTF8.GetString((await reader.ReadEventAsync(CancellationToken.None))!));
        Assert.Null(await reader.ReadEventAsync(CancellationToken.None));
    }

    [Fact]
    public async Task ReadEvent_EventsLargerThanTheBuffer_ComeWhole()
    {
        var big = new string('x', 100_000);
        var reader = new SseReader(new MemoryStream(Encoding.UTF8.GetBytes($"data: {big}\n\ndata: next\n\n")), 200_000);

        Assert.Equal(big, Encoding.UTF8.GetString((await reader.ReadEventAsync(CancellationToken.None))!));
        Assert.Equal("next", Encoding.UTF8.GetString((await reader.ReadEventAsync(CancellationToken.None))!));
    }

    [Fact]
    public async Task ReadEvent_EventOrLineOverTheLimit_Throws()
    {
        var tooBig = new SseReader(new MemoryStream(Encoding.UTF8.GetBytes($"data: {new string('x', 600)}\ndata: {new string('y', 600)}\n\n")), 1000);
        var endless = new SseReader(new MemoryStream(Encoding.UTF8.GetBytes(new string('z', 50_000))), 1000);

        await Assert.ThrowsAsync<InvalidDataException>(async () => await tooBig.ReadEventAsync(CancellationToken.None));
        await Assert.ThrowsAsync<InvalidDataException>(async () => await endless.ReadEventAsync(CancellationToken.None));
    }
}

using LlmServer.Engine.Generation;

namespace LlmServer.Engine.Tests.Generation;

public sealed class GenerationEventQueueTests
{
    private static TextDelta Delta(string text) => new(0, text, 1, null);

    [Fact]
    public async Task Writes_reach_a_waiting_reader_only_when_the_step_is_published()
    {
        var publisher = new StreamPublisher();
        var queue = new GenerationEventQueue(publisher);
        var waiting = queue.WaitToReadAsync();
        Assert.False(waiting.IsCompleted);

        queue.Write(Delta("a"));
        queue.Write(Delta("b"));
        Assert.False(waiting.IsCompleted);

        Assert.Equal(1, publisher.Publish());
        Assert.True(await waiting);
        Assert.True(queue.TryRead(out var first));
        Assert.True(queue.TryRead(out var second));
        Assert.False(queue.TryRead(out _));
        Assert.Equal(["a", "b"], new[] { ((TextDelta)first).Text, ((TextDelta)second).Text });
    }

    [Fact]
    public async Task One_publish_wakes_every_stream_the_step_fed_and_none_it_did_not()
    {
        var publisher = new StreamPublisher();
        var fed = Enumerable.Range(0, 8).Select(_ => new GenerationEventQueue(publisher)).ToArray();
        var idle = new GenerationEventQueue(publisher);
        var waits = fed.Select(q => q.WaitToReadAsync().AsTask()).ToArray();
        var idleWait = idle.WaitToReadAsync();
        foreach (var queue in fed)
        {
            queue.Write(Delta("x"));
        }

        Assert.Equal(8, publisher.Publish());
        Assert.All(await Task.WhenAll(waits), Assert.True);
        Assert.False(idleWait.IsCompleted);
        Assert.Equal(0, publisher.Publish());
    }

    [Fact]
    public async Task A_reader_busy_at_publish_time_finds_everything_on_its_next_read_and_the_end_after_it()
    {
        var publisher = new StreamPublisher();
        var queue = new GenerationEventQueue(publisher);
        queue.Write(Delta("a"));
        Assert.Equal(0, publisher.Publish());
        queue.Write(Delta("b"));
        queue.Complete();
        queue.Write(Delta("ignored after the end"));
        Assert.Equal(0, publisher.Publish());

        var texts = new List<string>();
        while (await queue.WaitToReadAsync())
        {
            while (queue.TryRead(out var item))
            {
                texts.Add(((TextDelta)item).Text);
            }
        }

        Assert.Equal(["a", "b"], texts);
    }

    [Fact]
    public async Task Completing_wakes_a_waiting_reader_which_then_sees_the_end()
    {
        var publisher = new StreamPublisher();
        var queue = new GenerationEventQueue(publisher);
        var waiting = queue.WaitToReadAsync();
        queue.Complete();

        Assert.Equal(1, publisher.Publish());
        Assert.True(await waiting);
        Assert.False(queue.TryRead(out _));
        Assert.False(await queue.WaitToReadAsync());
    }
}

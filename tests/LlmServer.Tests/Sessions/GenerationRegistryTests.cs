using LlmServer.Sessions;
using Microsoft.Extensions.Options;

namespace LlmServer.Tests.Sessions;

public sealed class GenerationRegistryTests
{
    [Fact]
    public async Task A_stop_that_waits_on_a_run_whose_turn_is_then_refused_goes_on()
    {
        using var registry = new GenerationRegistry(Options.Create(new SessionOptions()), TimeProvider.System);
        var run = registry.TryBegin("s1")!;
        var waiting = registry.StopAndWaitAsync("s1", CancellationToken.None);
        Assert.False(waiting.IsCompleted);

        registry.Abandon(run);

        await waiting.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.False(registry.IsGenerating("s1"));
        Assert.NotNull(registry.TryBegin("s1"));
    }
}

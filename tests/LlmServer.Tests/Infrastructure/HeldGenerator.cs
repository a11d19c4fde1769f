using LlmServer.Engine.Generation;
using LlmServer.Operations;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Infrastructure;

/// <summary>
/// A test hook in front of the server's engine: each generation streams its text as the model writes it, but its
/// ending is held back until the test calls <see cref="Release"/> or the generation is cancelled. A test can then
/// rely on a generation still running, whatever the model's own length, without racing it. Built with
/// <c>holdEndings: false</c> it only reports cancellations (<see cref="NextCancellation"/>); built with a
/// <c>holds</c> filter it holds only the endings of the requests the filter picks.
/// </summary>
internal sealed class HeldGenerator : DelegatingTextGenerator
{
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _cancelled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Func<GenerationRequest, bool>? _holds;
    private TaskCompletionSource? _nextCancellation;

    public HeldGenerator(ITextGenerator inner, bool holdEndings = true, Func<GenerationRequest, bool>? holds = null)
        : base(inner)
    {
        _holds = holds;
        if (!holdEndings)
        {
            Release();
        }
    }

    /// <summary>Puts the hook in front of the registered engine (for <see cref="TestServer.StartAsync"/>'s configureServices).</summary>
    public static void Install(IServiceCollection services) => Install(services, holds: null);

    /// <summary>As <see cref="Install(IServiceCollection)"/>, holding only the endings of the requests <paramref name="holds"/> picks.</summary>
    public static void Install(IServiceCollection services, Func<GenerationRequest, bool>? holds) =>
        OperationsExtensions.DecorateTextGenerator(services, (_, engine) => new HeldGenerator(engine, holds: holds));

    /// <summary>
    /// Completes when a caller first cancels one of the generations (its token, <see cref="GenerationStream.Cancel"/>,
    /// or disposing it before its end): with the ending held, nothing else can end a stream early.
    /// </summary>
    public Task Cancelled => _cancelled.Task;

    /// <summary>Completes at the first cancellation of any generation after this call.</summary>
    public Task NextCancellation()
    {
        var next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _nextCancellation, next);
        return next.Task;
    }

    /// <summary>Lets every held generation end (now and from now on).</summary>
    public void Release() => _released.TrySetResult();

    public override GenerationStream Submit(GenerationRequest request, CancellationToken cancellationToken = default)
    {
        var engine = base.Submit(request, cancellationToken);
        var publisher = new StreamPublisher();
        var queue = new GenerationEventQueue(publisher);
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ending = _holds is null || _holds(request) ? Task.WhenAny(_released.Task, cancelled.Task) : Task.CompletedTask;
        var forwarding = ForwardAsync(engine, queue, publisher, ending);
        return new GenerationStream(
            engine.Id,
            engine.PromptTokens,
            engine.Choices,
            queue,
            () =>
            {
                cancelled.TrySetResult();
                _cancelled.TrySetResult();
                Volatile.Read(ref _nextCancellation)?.TrySetResult();
                engine.Cancel();
                GC.KeepAlive(forwarding);
            },
            cancellationToken);
    }

    private static async Task ForwardAsync(GenerationStream engine, GenerationEventQueue queue, StreamPublisher publisher, Task ending)
    {
        try
        {
            await foreach (var item in engine.ReadAllAsync())
            {
                if (item is GenerationCompleted)
                {
                    await ending;
                }

                queue.Write(item);
                publisher.Publish();
            }
        }
        finally
        {
            queue.Complete();
            publisher.Publish();
            await engine.DisposeAsync();
        }
    }
}

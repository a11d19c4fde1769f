using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Infrastructure;

/// <summary>
/// The server's clock, able to refuse one timer: after <see cref="FailNextTimerOf{TOwner}"/>, the next timer whose
/// callback <typeparamref name="TOwner"/> declares cannot be created. A fault injected at a known point of a code path
/// that has no other way to fail on demand.
/// </summary>
internal sealed class FaultyTimers : TimeProvider
{
    private Type? _failFor;

    /// <summary>Makes this the server's <see cref="TimeProvider"/> (for <see cref="TestServer.StartAsync"/>'s configureServices).</summary>
    public void Install(IServiceCollection services) => services.AddSingleton<TimeProvider>(this);

    public void FailNextTimerOf<TOwner>() => Volatile.Write(ref _failFor, typeof(TOwner));

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var failFor = Volatile.Read(ref _failFor);
        // A callback lambda is a method of its class, or of a closure class nested in it.
        var declaring = callback.Method.DeclaringType;
        if (failFor is not null && (declaring == failFor || declaring?.DeclaringType == failFor)
            && Interlocked.CompareExchange(ref _failFor, null, failFor) == failFor)
        {
            throw new InvalidOperationException($"Injected fault: a timer of {failFor.Name} could not be created.");
        }

        return System.CreateTimer(callback, state, dueTime, period);
    }
}

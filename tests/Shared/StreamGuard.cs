namespace LlmServer.Testing;

/// <summary>
/// The guard on a test's wait for what a server sends (a stream's next event, its end): minutes, so a machine starved
/// for a while never trips it, yet a lost event fails that test, naming what it waited for, instead of hanging the
/// whole run. Nothing a test asserts depends on it.
/// </summary>
internal static class StreamGuard
{
    public static TimeSpan Limit { get; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Runs <paramref name="read"/> with a token cancelled once the guard has passed; then fails with
    /// <paramref name="missing"/>'s account of what never came (asked only then, so it can tell what had come).
    /// </summary>
    public static async Task<T> RunAsync<T>(Func<CancellationToken, Task<T>> read, Func<string> missing)
    {
        using var hang = new CancellationTokenSource(Limit);
        try
        {
            return await read(hang.Token);
        }
        catch (OperationCanceledException e) when (hang.IsCancellationRequested)
        {
            throw new TimeoutException($"{missing()}: it did not come within the test's guard of {Limit} (a lost event, or a machine starved that long).", e);
        }
    }

    /// <summary>The data of the next <c>data:</c> line of a server-sent-event stream, or null at its end; guarded.</summary>
    public static Task<string?> NextDataAsync(StreamReader reader) =>
        RunAsync(
            async cancellationToken =>
            {
                while (await reader.ReadLineAsync(cancellationToken) is { } line)
                {
                    if (line.StartsWith("data:", StringComparison.Ordinal))
                    {
                        return line["data:".Length..].Trim();
                    }
                }

                return null;
            },
            () => "The next event of the stream (or its end)");
}

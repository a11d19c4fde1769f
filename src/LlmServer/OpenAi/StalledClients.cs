using LlmServer.Operations;
using Microsoft.Extensions.Options;

namespace LlmServer.OpenAi;

/// <summary>
/// <c>Server:StalledClientSeconds</c> for every streamed response (<see cref="SseWriter"/>): a flush the client lets
/// wait that long (it reads nothing, so the response buffer stays full) aborts its connection, which cancels the
/// generation. Kestrel's own <c>MinResponseDataRate</c> cannot do it for a stream: each write moves its deadline on by
/// the write's size at 240 B/s, so a stream that wrote megabytes while the client still read has hours in hand.
/// </summary>
internal sealed partial class StalledClients(IOptions<ServerOptions> options, TimeProvider timeProvider, ILogger<StalledClients> logger)
{
    public TimeSpan Limit { get; } = TimeSpan.FromSeconds(options.Value.StalledClientSeconds);

    public TimeProvider TimeProvider => timeProvider;

    /// <summary>Ends the stalled response: logged once per response (its writer calls this once).</summary>
    public void Abort(HttpContext context)
    {
        LogStalled(logger, context.Request.Method, context.Request.Path, context.Connection.Id, Limit.TotalSeconds);
        context.Abort();
    }

    [LoggerMessage(EventId = 3005, Level = LogLevel.Warning, Message = "Closing the connection of {Method} {Path} ({ConnectionId}): the client made no room in its stream for {Seconds} s.")]
    private static partial void LogStalled(ILogger logger, string method, string path, string connectionId, double seconds);
}

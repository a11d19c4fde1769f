using System.Globalization;
using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;

namespace LlmServer.OpenAi;

/// <summary>
/// Server-sent events straight into the response pipe: each event is <c>data: JSON</c> and a blank line (after an
/// optional <c>event:</c> or <c>id:</c> line), written by one reused <see cref="Utf8JsonWriter"/> with source-generated
/// metadata (no reflection, no per-event buffers). Every streaming front end writes through it: OpenAI, Anthropic,
/// Responses and the sessions' REST mirror. Once the client is gone, writes are dropped and
/// <see cref="IsClientGone"/> says so; a client that lets a flush wait <c>Server:StalledClientSeconds</c> is cut off
/// (<see cref="StalledClients"/>).
/// </summary>
internal sealed class SseWriter : IDisposable
{
    private readonly PipeWriter _pipe;
    private readonly Utf8JsonWriter _json;
    private readonly HttpContext _context;
    private readonly CancellationToken _requestAborted;
    private readonly StalledClients _stalledClients;
    // The stall timer's callback runs on the thread pool: it may cut the connection only while a flush is pending and
    // the writer is not disposed (Kestrel reuses a context once its response ends), decided under this lock.
    private readonly Lock _stallLock = new();
    private ITimer? _stallTimer;
    private bool _flushPending;
    private bool _disposed;
    private bool _stalled;
    private bool _writeFailed;

    private SseWriter(PipeWriter pipe, HttpContext context, StalledClients stalledClients)
    {
        _pipe = pipe;
        _context = context;
        _requestAborted = context.RequestAborted;
        _stalledClients = stalledClients;
        _json = new Utf8JsonWriter(pipe, new JsonWriterOptions { Encoder = OpenAiJson.Encoder, SkipValidation = true });
    }

    /// <summary>
    /// The client disconnected: a write failed, or the request was aborted before anything needed writing (so a
    /// generation the disconnect cancelled is not reported as cancelled by the server).
    /// </summary>
    public bool IsClientGone => _writeFailed || _requestAborted.IsCancellationRequested;

    /// <summary>Sends 200 and the event-stream headers; nothing is buffered from here on.</summary>
    public static SseWriter Start(HttpContext context)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        return new SseWriter(response.BodyWriter, context, context.RequestServices.GetRequiredService<StalledClients>());
    }

    /// <summary>Starts a <c>data:</c> event and returns the writer for its JSON; end it with <see cref="EndEvent"/>.</summary>
    public Utf8JsonWriter BeginEvent()
    {
        _pipe.Write("data: "u8);
        _json.Reset(_pipe);
        return _json;
    }

    /// <summary>
    /// Starts an event with an <c>event:</c> line (<paramref name="eventName"/> is ASCII, as the Anthropic and
    /// Responses streams name their events), then its <c>data:</c> JSON; end it with <see cref="EndEvent"/>.
    /// </summary>
    public Utf8JsonWriter BeginEvent(ReadOnlySpan<byte> eventName)
    {
        _pipe.Write("event: "u8);
        _pipe.Write(eventName);
        _pipe.Write("\n"u8);
        return BeginEvent();
    }

    /// <summary>
    /// Starts an event with an <c>id:</c> line (the sessions' sequence number, which a client resumes from with
    /// <c>Last-Event-ID</c>), then its <c>data:</c> JSON; end it with <see cref="EndEvent"/>.
    /// </summary>
    public Utf8JsonWriter BeginEvent(long id)
    {
        _pipe.Write("id: "u8);
        var digits = _pipe.GetSpan(20);
        id.TryFormat(digits, out var written, provider: CultureInfo.InvariantCulture);
        _pipe.Advance(written);
        _pipe.Write("\n"u8);
        return BeginEvent();
    }

    public void EndEvent()
    {
        _json.Flush();
        _pipe.Write("\n\n"u8);
    }

    /// <summary>An SSE comment: clients ignore it, proxies see traffic.</summary>
    public void WriteKeepAlive() => _pipe.Write(": keep-alive\n\n"u8);

    public void WriteDone() => _pipe.Write("data: [DONE]\n\n"u8);

    /// <summary>
    /// Waits for the next of <paramref name="events"/>, calling <paramref name="keepAlive"/> (then flushing) every
    /// <paramref name="interval"/> until it comes, so proxies and clients keep a quiet connection.
    /// </summary>
    public async ValueTask<bool> MoveNextAsync<T>(IAsyncEnumerator<T> events, TimeSpan interval, TimeProvider timeProvider, Action keepAlive)
    {
        var next = events.MoveNextAsync();
        if (next.IsCompleted)
        {
            return await next;
        }

        var pending = next.AsTask();
        while (true)
        {
            using var delayCancellation = new CancellationTokenSource();
            var delay = Task.Delay(interval, timeProvider, delayCancellation.Token);
            if (await Task.WhenAny(pending, delay) == pending)
            {
                await delayCancellation.CancelAsync();
                return await pending;
            }

            if (!IsClientGone)
            {
                keepAlive();
                await FlushAsync();
            }
        }
    }

    /// <summary>
    /// Sends what was written. Never throws: a failed flush means the client went away. A flush that waits (the
    /// client's buffers are full) is timed: past <c>Server:StalledClientSeconds</c> the connection is aborted.
    /// </summary>
    public async ValueTask FlushAsync()
    {
        if (IsClientGone)
        {
            return;
        }

        try
        {
            var flush = _pipe.FlushAsync(CancellationToken.None);
            FlushResult result;
            if (flush.IsCompleted)
            {
                result = flush.Result;
            }
            else
            {
                // Armed only when the client is behind: a reading client's flushes complete at once, untimed.
                var timer = _stallTimer ??= _stalledClients.TimeProvider.CreateTimer(
                    static writer => ((SseWriter)writer!).OnStalled(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                lock (_stallLock)
                {
                    _flushPending = true;
                }

                timer.Change(_stalledClients.Limit, Timeout.InfiniteTimeSpan);
                try
                {
                    result = await flush;
                }
                finally
                {
                    lock (_stallLock)
                    {
                        _flushPending = false;
                    }

                    timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                }
            }

            bool stalled;
            lock (_stallLock)
            {
                stalled = _stalled;
            }

            _writeFailed = result.IsCompleted || result.IsCanceled || stalled;
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
            _writeFailed = true;
        }
    }

    public void Dispose()
    {
        // A late timer callback must not touch the context once the response is over (Kestrel reuses it).
        lock (_stallLock)
        {
            _disposed = true;
        }

        _stallTimer?.Dispose();
        _json.Dispose();
    }

    /// <summary>
    /// More than a socket buffer's worth written and not yet sent: a burst of ready events is flushed part by part, so
    /// each timed flush waits for the client to make room for one part, not to read the whole backlog.
    /// </summary>
    public bool HasBacklog => _pipe.CanGetUnflushedBytes && _pipe.UnflushedBytes >= BacklogBytes;

    private const int BacklogBytes = 32 * 1024;

    /// <summary>The timer's callback (a thread-pool thread): the flush made no progress for the limit.</summary>
    private void OnStalled()
    {
        lock (_stallLock)
        {
            if (!_flushPending || _disposed || _stalled)
            {
                return;
            }

            _stalled = true;
            try
            {
                // Aborting cancels RequestAborted, so the generation submitted with it stops; the flush then returns.
                _stalledClients.Abort(_context);
                _pipe.CancelPendingFlush();
            }
            catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException)
            {
                // The response ended meanwhile: nothing is left to cut.
            }
        }
    }
}

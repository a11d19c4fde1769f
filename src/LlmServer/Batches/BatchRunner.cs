using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Security.Claims;
using System.Text;
using System.Text.Json;
using LlmServer.Embeddings;
using LlmServer.Engine.Generation;
using LlmServer.OpenAi;
using LlmServer.Operations.Auth;
using LlmServer.Operations.Metrics;
using Microsoft.Extensions.Options;

namespace LlmServer.Batches;

/// <summary>
/// Works through batches oldest first: validates the batch's own copy of its input file (taken when it was created,
/// so deleting the file changes nothing), runs its request lines through the same endpoint
/// code callers use, in the scheduler's batch lane, at most <see cref="BatchOptions.MaxRunning"/> at a time, stores
/// each finished line, then writes the output and error files. A restart resumes every unfinished batch: stored
/// lines are kept, the rest run again. A line the engine refuses for a full queue is retried, never failed.
/// </summary>
internal sealed partial class BatchRunner : BackgroundService
{
    private static readonly string[] RunningStatuses = ["in_progress"];
    private static readonly string[] FinishingStatuses = ["in_progress", "finalizing"];
    private static readonly string[] CancellingStatuses = ["cancelling"];
    private static readonly string[] ValidatingStatuses = ["validating"];
    private static readonly string[] StartedStatuses = ["validating", "in_progress"];

    private readonly BatchStore _store;
    private readonly BatchOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<BatchRunner> _logger;
    private readonly Dictionary<string, Func<HttpContext, Task>> _handlers;
    private readonly SemaphoreSlim _wake = new(0);
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _running = new(StringComparer.Ordinal);
    private readonly Counter<long> _done;
    private int _waiting;
    private int _inFlight;
    private int _linesRun;

    public BatchRunner(
        BatchStore store,
        IOptions<BatchOptions> options,
        ChatCompletionsEndpoint chat,
        CompletionsEndpoint completions,
        EmbeddingsEndpoint embeddings,
        TimeProvider time,
        IMeterFactory meters,
        ILogger<BatchRunner> logger)
    {
        _store = store;
        _options = options.Value;
        _time = time;
        _logger = logger;
        _handlers = new Dictionary<string, Func<HttpContext, Task>>(StringComparer.Ordinal)
        {
            ["/v1/chat/completions"] = chat.HandleAsync,
            ["/v1/completions"] = completions.HandleAsync,
            ["/v1/embeddings"] = embeddings.HandleAsync,
        };
        var meter = meters.Create(OperationsTelemetry.EngineMeterName);
        meter.CreateObservableGauge("llmserver.batch.requests_waiting", () => Volatile.Read(ref _waiting), description: "Batch request lines not yet handed to the engine");
        meter.CreateObservableGauge("llmserver.batch.requests_running", () => Volatile.Read(ref _inFlight), description: "Batch request lines running in the engine");
        _done = meter.CreateCounter<long>("llmserver.batch.requests_done", description: "Batch request lines finished (output or error file)");
    }

    /// <summary>Lines this runner finished since it started (the rest of a resumed batch).</summary>
    public int LinesRun => Volatile.Read(ref _linesRun);

    public void Wake() => _wake.Release();

    /// <summary>Stops the lines of a batch that is being cancelled; the runner then finalizes it as cancelled.</summary>
    public void Cancel(string batchId)
    {
        if (_running.TryGetValue(batchId, out var cancel))
        {
            cancel.Cancel();
        }

        Wake();
    }

    /// <summary>The batch tables exist before the server takes its first request (the loop runs in the background).</summary>
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await _store.InitializeAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await RunAsync(stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: unfinished lines are not stored, and the next start resumes them.
        }
    }

    private async Task RunAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var active = await _store.ActiveBatchIdsAsync(stoppingToken);
            if (active.Count == 0)
            {
                await _wake.WaitAsync(stoppingToken);
                continue;
            }

            try
            {
                await ProcessAsync(active[0], stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                LogBatchFailed(_logger, active[0], ex);
                await _store.MoveAsync(active[0], "failed", Now(), BatchStore.ActiveStatuses, stoppingToken, new BatchTransition(Errors: Errors("server_error", "The server failed while running this batch.")));
            }
        }
    }

    private async Task ProcessAsync(string id, CancellationToken stoppingToken)
    {
        var (batch, owner) = await _store.GetBatchAsync(id, null, anyOwner: true, stoppingToken) ?? throw new InvalidOperationException($"Batch {id} vanished.");
        switch (batch.Status)
        {
            // Ending a batch needs only its stored lines, never its input.
            case "finalizing":
                await FinalizeAsync(batch, owner, "completed", FinishingStatuses, stoppingToken);
                return;
            case "cancelling":
                await FinalizeAsync(batch, owner, "cancelled", CancellingStatuses, stoppingToken);
                return;
        }

        var content = await _store.GetBatchInputAsync(id, stoppingToken);
        if (content is null)
        {
            // Only a batch created before batches kept their own copy of the input, whose file was deleted before the
            // upgrade, has none.
            await _store.MoveAsync(id, "failed", Now(), StartedStatuses, stoppingToken, new BatchTransition(Errors: Errors("input_file_missing", $"The input file '{batch.InputFileId}' was deleted.")));
            return;
        }

        var (lines, errors) = BatchFormat.Parse(content, _options.MaxLines, batch.Endpoint);
        switch (batch.Status)
        {
            case "validating" when errors.Count > 0:
                await _store.MoveAsync(id, "failed", Now(), ValidatingStatuses, stoppingToken, new BatchTransition(Total: 0, Errors: new BatchErrors("list", errors)));
                return;
            case "validating":
                await _store.MoveAsync(id, "in_progress", Now(), ValidatingStatuses, stoppingToken, new BatchTransition(Total: lines.Count));
                return;
            case "in_progress":
                var ended = await RunLinesAsync(batch, owner, lines, stoppingToken);
                if (ended == "in_progress" && await _store.MoveAsync(id, "finalizing", Now(), RunningStatuses, stoppingToken))
                {
                    await FinalizeAsync(batch, owner, "completed", FinishingStatuses, stoppingToken);
                }
                else if (ended == "expired")
                {
                    await FinalizeAsync(batch, owner, "expired", RunningStatuses, stoppingToken);
                }

                return;
        }
    }

    /// <summary>Runs the lines not yet stored; returns the status the batch is in when they stop.</summary>
    private async Task<string> RunLinesAsync(BatchObject batch, string? owner, List<ParsedLine> lines, CancellationToken stoppingToken)
    {
        var done = await _store.DoneLinesAsync(batch.Id, stoppingToken);
        var todo = lines.Where(l => !done.Contains(l.Index)).ToList();
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        _running[batch.Id] = cancel;
        Interlocked.Add(ref _waiting, todo.Count);
        var slots = new SemaphoreSlim(_options.MaxRunning);
        var tasks = new List<Task>(todo.Count);
        var expired = false;
        try
        {
            foreach (var line in todo)
            {
                await slots.WaitAsync(cancel.Token);
                if (_time.GetUtcNow().ToUnixTimeSeconds() > batch.ExpiresAt)
                {
                    expired = true;
                    slots.Release();
                    break;
                }

                Interlocked.Decrement(ref _waiting);
                tasks.Add(RunLineAsync(batch, owner, line, slots, cancel.Token));
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            // Cancelled or shutting down: the lines in flight stop too, and are not stored.
        }
        finally
        {
            await Task.WhenAll(tasks);
            Interlocked.Exchange(ref _waiting, 0);
            _running.TryRemove(batch.Id, out _);
        }

        stoppingToken.ThrowIfCancellationRequested();
        if (expired)
        {
            return "expired";
        }

        var current = await _store.GetBatchAsync(batch.Id, null, anyOwner: true, stoppingToken);
        return current?.Batch.Status ?? "failed";
    }

    private async Task RunLineAsync(BatchObject batch, string? owner, ParsedLine line, SemaphoreSlim slots, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _inFlight);
        try
        {
            while (true)
            {
                var (status, body) = await InvokeAsync(line, owner, cancellationToken);
                if (cancellationToken.IsCancellationRequested)
                {
                    return;
                }

                if (status is StatusCodes.Status429TooManyRequests or StatusCodes.Status503ServiceUnavailable)
                {
                    // The engine's queue is full, or the model is still loading: the line waits its turn rather than failing.
                    await Task.Delay(TimeSpan.FromMilliseconds(500), _time, cancellationToken);
                    continue;
                }

                var output = new BatchOutputLine(
                    OpenAiResponder.NewId("batch_req_"),
                    line.CustomId,
                    new BatchLineResponse(status, OpenAiResponder.NewId("req_"), body),
                    null);
                await _store.AddLineAsync(batch.Id, line.Index, status, JsonSerializer.Serialize(output, BatchJson.Context.BatchOutputLine), CancellationToken.None);
                Interlocked.Increment(ref _linesRun);
                _done.Add(1, new KeyValuePair<string, object?>("outcome", status < 400 ? "completed" : "failed"));
                return;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Not stored: a resumed batch runs this line again.
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
            slots.Release();
        }
    }

    /// <summary>Runs one line through its endpoint's own handler, as an in-process request in the batch lane.</summary>
    private async Task<(int Status, JsonElement Body)> InvokeAsync(ParsedLine line, string? owner, CancellationToken cancellationToken)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = HttpMethods.Post;
        context.Request.Path = line.Url;
        context.Request.ContentType = "application/json";
        context.Request.ContentLength = line.Body.Length;
        context.Request.Body = new MemoryStream(line.Body, writable: false);
        using var response = new MemoryStream();
        context.Response.Body = response;
        context.RequestAborted = cancellationToken;
        context.User = new ClaimsPrincipal(new ClaimsIdentity(owner is null ? [] : [new Claim(ApiKeyAuthentication.KeyIdClaim, owner)], "batch"));
        RequestLane.Set(context, RequestPriority.Batch);
        try
        {
            await _handlers[line.Url](context);
        }
        catch (Exception ex) when (ex is OpenAiException or GenerationException && !cancellationToken.IsCancellationRequested)
        {
            var error = ex as OpenAiException ?? OpenAiErrors.FromGeneration((GenerationException)ex);
            await OpenAiErrors.WriteAsync(context, error, CancellationToken.None);
        }

        await context.Response.BodyWriter.FlushAsync(CancellationToken.None);
        var text = Encoding.UTF8.GetString(response.GetBuffer(), 0, (int)response.Length);
        using var document = JsonDocument.Parse(text.Length == 0 ? "{}" : text);
        return (context.Response.StatusCode, document.RootElement.Clone());
    }

    /// <summary>Writes the output file (2xx lines) and the error file (the rest), in input order, and ends the batch.</summary>
    private async Task FinalizeAsync(BatchObject batch, string? owner, string status, IReadOnlyList<string> from, CancellationToken cancellationToken)
    {
        var lines = await _store.LinesAsync(batch.Id, cancellationToken);
        var output = await WriteFileAsync(batch, owner, "output", lines.Where(l => l.StatusCode < 400).Select(l => l.Result), cancellationToken);
        var errors = await WriteFileAsync(batch, owner, "errors", lines.Where(l => l.StatusCode >= 400).Select(l => l.Result), cancellationToken);
        await _store.MoveAsync(batch.Id, status, Now(), from, cancellationToken, new BatchTransition(OutputFileId: output, ErrorFileId: errors));
        LogBatchEnded(_logger, batch.Id, status, lines.Count);
    }

    private async Task<string?> WriteFileAsync(BatchObject batch, string? owner, string kind, IEnumerable<string> lines, CancellationToken cancellationToken)
    {
        var text = string.Concat(lines.Select(l => l + "\n"));
        if (text.Length == 0)
        {
            return null;
        }

        var content = Encoding.UTF8.GetBytes(text);
        var file = new FileObject(OpenAiResponder.NewId("file-"), "file", content.Length, Now(), $"{batch.Id}_{kind}.jsonl", "batch_output", "processed");
        await _store.AddFileAsync(file, owner, content, cancellationToken);
        return file.Id;
    }

    private long Now() => _time.GetUtcNow().ToUnixTimeSeconds();

    private static BatchErrors Errors(string code, string message) => new("list", [new BatchError(code, message, null, null)]);

    [LoggerMessage(Level = LogLevel.Error, Message = "Batch {BatchId} failed")]
    private static partial void LogBatchFailed(ILogger logger, string batchId, Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Batch {BatchId} {Status}: {Lines} lines done")]
    private static partial void LogBatchEnded(ILogger logger, string batchId, string status, int lines);
}

using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using LlmServer.OpenAi;
using LlmServer.Operations.Limits;
using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

/// <summary>
/// The REST mirror of the hub under <c>/api/sessions</c>. Generations stream as server-sent events
/// (<c>id: seq</c>, <c>data: {ChatStreamEvent}</c>) through the one <see cref="SseWriter"/>, with keep-alive comments
/// every <c>OpenAi:KeepAliveInterval</c> while nothing comes; a client that goes away leaves the generation running for
/// the resume grace period (<c>GET /api/sessions/{id}/events?afterSeq=N</c> or a <c>Last-Event-ID</c> header resumes it),
/// and with it the request's concurrent-generation permit (<see cref="CallPermit"/>); resuming takes none.
/// </summary>
internal static class SessionEndpoints
{
    private static readonly SessionJsonContext Json = SessionJsonContext.Default;

    public static void MapSessionEndpoints(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup(SessionServiceCollectionExtensions.RestPath);

        group.MapGet("", (HttpContext http, SessionService sessions) =>
            Handle(http, async ct => TypedResults.Json(await sessions.ListAsync(Owner(http), ct), Json.SessionInfoArray)));

        group.MapPost("", (HttpContext http, SessionService sessions) =>
            Handle(http, async ct =>
            {
                var request = await ReadBodyAsync(http, Json.CreateSessionRequest, ct);
                var created = await sessions.CreateAsync(Owner(http), request, ct);
                http.Response.Headers.Location = $"/api/sessions/{created.Id}";
                return TypedResults.Json(created, Json.SessionInfo, statusCode: StatusCodes.Status201Created);
            }));

        group.MapGet("/{id}", (HttpContext http, string id, SessionService sessions) =>
            Handle(http, async ct => TypedResults.Json(await sessions.GetAsync(Owner(http), id, ct), Json.SessionDetail)));

        group.MapPatch("/{id}", (HttpContext http, string id, SessionService sessions) =>
            Handle(http, async ct =>
            {
                var (request, settingsGiven) = await ReadUpdateAsync(http, ct);
                return TypedResults.Json(await sessions.UpdateAsync(Owner(http), id, request, settingsGiven, ct), Json.SessionInfo);
            }));

        group.MapDelete("/{id}", (HttpContext http, string id, SessionService sessions) =>
            Handle(http, async ct =>
            {
                await sessions.DeleteAsync(Owner(http), id, ct);
                return Results.NoContent();
            }));

        group.MapPost("/{id}/messages", (HttpContext http, string id, SessionTurns turns, CallPermit permit) =>
            StreamAsync(http, async ct =>
            {
                var request = await ReadBodyAsync(http, Json.SendMessageRequest, ct);
                return await turns.SendAsync(Owner(http), id, request?.Text, permit, ct);
            })).RunsModel();

        group.MapPut("/{id}/messages/{index:int}", (HttpContext http, string id, int index, SessionTurns turns, CallPermit permit) =>
            StreamAsync(http, async ct =>
            {
                var request = await ReadBodyAsync(http, Json.SendMessageRequest, ct);
                return await turns.EditAsync(Owner(http), id, index, request?.Text, permit, ct);
            })).RunsModel();

        group.MapPost("/{id}/regenerate", (HttpContext http, string id, SessionTurns turns, CallPermit permit) =>
            StreamAsync(http, ct => turns.RegenerateAsync(Owner(http), id, permit, ct))).RunsModel();

        group.MapPost("/{id}/stop", (HttpContext http, string id, SessionTurns turns) =>
            Handle(http, async ct =>
            {
                await turns.StopAsync(Owner(http), id, ct);
                return Results.NoContent();
            }));

        group.MapGet("/{id}/events", (HttpContext http, string id, SessionTurns turns) =>
            StreamAsync(http, ct => turns.ResumeAsync(Owner(http), id, ResumePoint(http), ct)));
    }

    private static string? Owner(HttpContext http) => SessionCaller.Owner(http.User);

    private static async Task<IResult> Handle(HttpContext http, Func<CancellationToken, Task<IResult>> action)
    {
        try
        {
            return await action(http.RequestAborted);
        }
        catch (Exception ex) when (SessionErrors.Of(ex) is { } error)
        {
            return SessionErrors.ToHttp(error);
        }
    }

    private static async Task StreamAsync(HttpContext http, Func<CancellationToken, Task<GenerationSubscription>> subscribe)
    {
        var cancellationToken = http.RequestAborted;
        GenerationSubscription subscription;
        try
        {
            subscription = await subscribe(cancellationToken);
        }
        catch (Exception ex) when (SessionErrors.Of(ex) is { } error)
        {
            await SessionErrors.ToHttp(error).ExecuteAsync(http);
            return;
        }

        await using (subscription)
        {
            var interval = http.RequestServices.GetRequiredService<IOptionsMonitor<OpenAiOptions>>().CurrentValue.KeepAliveInterval;
            var timeProvider = http.RequestServices.GetRequiredService<TimeProvider>();
            using var sse = SseWriter.Start(http);
            var events = subscription.ReadAllAsync(cancellationToken).GetAsyncEnumerator();
            try
            {
                await sse.FlushAsync();
                if (HttpMethods.IsHead(http.Request.Method))
                {
                    // The stream's headers only: a HEAD's client reads no events, so none are waited for.
                    return;
                }

                while (!sse.IsClientGone && await sse.MoveNextAsync(events, interval, timeProvider, sse.WriteKeepAlive))
                {
                    var item = events.Current;
                    JsonSerializer.Serialize(sse.BeginEvent(item.Seq), item, Json.ChatStreamEvent);
                    sse.EndEvent();
                    await sse.FlushAsync();
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // The client went away; the generation keeps running for the grace period so it can resume.
            }
            finally
            {
                await events.DisposeAsync();
            }
        }
    }

    /// <summary><c>?afterSeq=N</c>, else the SSE <c>Last-Event-ID</c> header, else 0 (everything).</summary>
    private static long ResumePoint(HttpContext http)
    {
        var raw = http.Request.Query["afterSeq"].FirstOrDefault() ?? http.Request.Headers["Last-Event-ID"].FirstOrDefault();
        if (raw is null)
        {
            return 0;
        }

        return long.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw SessionException.Invalid("afterSeq", "afterSeq must be a whole number, 0 or more");
    }

    /// <summary>A PATCH body, and which settings it names: those change (null resets one), the others stay.</summary>
    private static async Task<(UpdateSessionRequest Request, SettingsFields SettingsGiven)> ReadUpdateAsync(HttpContext http, CancellationToken cancellationToken)
    {
        using var body = await ReadBodyAsync(http, Json.JsonDocument, cancellationToken);
        if (body is null || body.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw SessionException.Invalid("body", "a JSON object with title, systemPrompt or settings is required");
        }

        UpdateSessionRequest request;
        try
        {
            request = body.RootElement.Deserialize(Json.UpdateSessionRequest)!;
        }
        catch (JsonException ex)
        {
            throw SessionException.Invalid("body", $"the body is not valid JSON for this request: {ex.Message}");
        }

        var given = SettingsFields.None;
        foreach (var property in body.RootElement.EnumerateObject())
        {
            // Names match as the deserializer matches them (the web defaults ignore case).
            if (!property.Name.Equals("settings", StringComparison.OrdinalIgnoreCase) || property.Value.ValueKind != JsonValueKind.Object)
            {
                continue;
            }

            foreach (var field in property.Value.EnumerateObject())
            {
                given |= SettingsField(field.Name) ?? throw SessionException.Invalid(
                    "settings",
                    $"settings has no field '{field.Name}' (the fields are temperature, topP, maxTokens and seed)");
            }
        }

        return (request, given);
    }

    private static SettingsFields? SettingsField(string name) => name.ToUpperInvariant() switch
    {
        "TEMPERATURE" => SettingsFields.Temperature,
        "TOPP" => SettingsFields.TopP,
        "MAXTOKENS" => SettingsFields.MaxTokens,
        "SEED" => SettingsFields.Seed,
        _ => null,
    };

    private static async Task<T?> ReadBodyAsync<T>(HttpContext http, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken)
        where T : class
    {
        if (http.Request.ContentLength == 0)
        {
            return null;
        }

        if (!http.Request.HasJsonContentType())
        {
            // No body at all (no Content-Length and no content type, as many clients send a bodiless POST) is an
            // empty one; a body of another type is refused.
            var read = await http.Request.BodyReader.ReadAsync(cancellationToken);
            var empty = read.IsCompleted && read.Buffer.IsEmpty;
            http.Request.BodyReader.AdvanceTo(read.Buffer.Start);
            if (!empty)
            {
                throw SessionException.Invalid("body", "the body must be JSON (Content-Type: application/json)");
            }

            return null;
        }

        try
        {
            return await http.Request.ReadFromJsonAsync(typeInfo, cancellationToken);
        }
        catch (JsonException ex)
        {
            throw SessionException.Invalid("body", $"the body is not valid JSON for this request: {ex.Message}");
        }
    }
}

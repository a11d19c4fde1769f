using LlmServer.ReplicaProtocol;
using LlmServer.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace LlmServer.Router.Tests.Infrastructure;

/// <summary>
/// A stand-in replica in this process, for what a real one does only for an instant: it reports ready, and either
/// refuses every API request as a draining replica does (503 with <see cref="DrainMarker"/>, body unread) or
/// answers it with 200. Counts the API requests it saw. Given a sessions store, it reports it in its readiness and
/// answers <c>GET /api/sessions</c> with <see cref="SessionsAnswer"/>, keeping the <c>Authorization</c> and query it was sent.
/// </summary>
internal sealed class FakeReplica : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _requests;

    private FakeReplica(WebApplication app)
    {
        _app = app;
    }

    /// <summary>Where it listens (a port it took itself).</summary>
    public string Address { get; private set; } = "";

    public int Requests => Volatile.Read(ref _requests);

    /// <summary>What <c>GET /api/sessions</c> answers (a list of sessions by default: none).</summary>
    public Func<IResult> SessionsAnswer { get; set; } = () => Results.Json(Array.Empty<object>());

    /// <summary>The <c>Authorization</c> header of the last <c>GET /api/sessions</c>.</summary>
    public string? SessionsAuthorization { get; private set; }

    /// <summary>The query string of the last <c>GET /api/sessions</c>.</summary>
    public string? SessionsQuery { get; private set; }

    public static async Task<FakeReplica> StartAsync(bool refusesAsDraining, string? sessionStore = null)
    {
        var builder = WebApplication.CreateSlimBuilder(["--urls", ServerProcess.AnyLoopbackPort, "--Logging:LogLevel:Default=Warning"]);
        var app = builder.Build();
        var replica = new FakeReplica(app);
        app.MapGet("/health/ready", () => Results.Json(new { status = "ok", reason = "ready", running = 0, waiting = 0, sessionStore }));
        app.MapGet("/api/sessions", (HttpContext context) =>
        {
            replica.SessionsAuthorization = context.Request.Headers.Authorization;
            replica.SessionsQuery = context.Request.QueryString.Value;
            return replica.SessionsAnswer();
        });
        app.MapPost("/v1/chat/completions", (HttpContext context) =>
        {
            Interlocked.Increment(ref replica._requests);
            if (!refusesAsDraining)
            {
                return Results.Json(new { served = true });
            }

            context.Response.Headers[DrainMarker.Header] = DrainMarker.Value;
            context.Response.Headers.RetryAfter = "30";
            return Results.Json(new { error = new { message = "The server is shutting down.", code = "server_shutting_down" } }, statusCode: StatusCodes.Status503ServiceUnavailable);
        });
        await app.StartAsync();
        replica.Address = RouterHost.ListeningAddress(app);
        return replica;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

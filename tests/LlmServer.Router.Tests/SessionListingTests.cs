using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;
using LlmServer.Router.Hosting;
using LlmServer.Router.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace LlmServer.Router.Tests;

/// <summary><c>GET /api/sessions</c> over replicas with stores of their own, against stand-in replicas.</summary>
public sealed class SessionListingTests
{
    [Fact]
    public async Task The_lists_are_merged_most_recently_active_first_with_the_callers_key_and_a_replicas_refusal_is_passed_on()
    {
        await using var first = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "aaaaaaaaaaaa");
        await using var second = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "bbbbbbbbbbbb");
        first.SessionsAnswer = () => Results.Json(new[] { Session("aaaaaaaaaaaa-1", "2026-01-03T00:00:00Z"), Session("aaaaaaaaaaaa-2", "2026-01-01T00:00:00Z") });
        second.SessionsAnswer = () => Results.Json(new[] { Session("bbbbbbbbbbbb-1", "2026-01-02T00:00:00Z") });
        await using var router = await RouterHost.StartAsync(first.Address, second.Address);
        await router.WaitForStoresAsync(first.Address, second.Address);

        using (var request = new HttpRequestMessage(HttpMethod.Get, "/api/sessions"))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "caller-key");
            using var response = await router.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var list = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal(
                new[] { "aaaaaaaaaaaa-1", "bbbbbbbbbbbb-1", "aaaaaaaaaaaa-2" },
                list.RootElement.EnumerateArray().Select(s => s.GetProperty("id").GetString()!).ToArray());
        }

        Assert.Equal(("Bearer caller-key", "Bearer caller-key"), (first.SessionsAuthorization, second.SessionsAuthorization));

        second.SessionsAnswer = () => Results.Json(
            new { error = new { message = "The API key is not valid.", type = "invalid_request_error", param = (string?)null, code = "invalid_api_key" } },
            statusCode: StatusCodes.Status401Unauthorized);
        using var refused = await router.Client.GetAsync(new Uri("/api/sessions", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        using var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
        Assert.Equal("invalid_api_key", error.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("/api/sessions/", null)]
    [InlineData("/API/Sessions/", null)]
    [InlineData("/api/sessions?limit=5&owner=x", "?limit=5&owner=x")]
    [InlineData("/api/sessions/?limit=5", "?limit=5")]
    public async Task Every_path_the_replicas_list_on_is_merged_and_its_query_goes_to_each_replica(string path, string? query)
    {
        await using var first = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "aaaaaaaaaaaa");
        await using var second = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "bbbbbbbbbbbb");
        first.SessionsAnswer = () => Results.Json(new[] { Session("aaaaaaaaaaaa-1", "2026-01-01T00:00:00Z") });
        second.SessionsAnswer = () => Results.Json(new[] { Session("bbbbbbbbbbbb-1", "2026-01-02T00:00:00Z") });
        await using var router = await RouterHost.StartAsync(first.Address, second.Address);
        await router.WaitForStoresAsync(first.Address, second.Address);

        using var response = await router.Client.GetAsync(new Uri(path, UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var list = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(new[] { "bbbbbbbbbbbb-1", "aaaaaaaaaaaa-1" }, list.RootElement.EnumerateArray().Select(s => s.GetProperty("id").GetString()!).ToArray());
        Assert.Equal((query ?? "", query ?? ""), (first.SessionsQuery, second.SessionsQuery));
    }

    private static IResult InvalidAnswer(string what) => what switch
    {
        "not JSON" => Results.Text("<html>oops</html>", "text/html"),
        "JSON cut short" => Results.Text("""[{"id":"bbbbbbbbbbbb-1","createdAt":"2026""", "application/json"),
        "an object" => Results.Json(new { sessions = Array.Empty<object>() }),
        "a session without its times" => Results.Json(new object[] { Session("bbbbbbbbbbbb-1", "2026-01-02T00:00:00Z"), new { id = "bbbbbbbbbbbb-2" } }),
        "a time that is not one" => Results.Json(new[] { Session("bbbbbbbbbbbb-1", "yesterday") }),
        "a list over the limit" => Results.Json(LongList()),
        "a list over the limit, its length told" => Results.Bytes(JsonSerializer.SerializeToUtf8Bytes(LongList()), "application/json"),
        "an id that is not UTF-8" => Results.Bytes(ListWithId([.. "bbbbbbbbbbbb-"u8, 0xFF, 0xFE]), "application/json"),
        "an id that is half a surrogate pair" => Results.Bytes(ListWithId([.. "bbbbbbbbbbbb-\\uD800"u8]), "application/json"),
        _ => Results.Json(new[] { 1, 2 }),
    };

    /// <summary>A list of one session whose id is <paramref name="id"/>, byte for byte (a serializer would not write a broken one).</summary>
    private static byte[] ListWithId(byte[] id) =>
        [.. "[{\"id\":\""u8, .. id, .. "\",\"createdAt\":\"2026-01-01T00:00:00Z\",\"updatedAt\":\"2026-01-02T00:00:00Z\"}]"u8];

    // Past the 4 KiB the tests set as a replica's largest list.
    private static object[] LongList() => [.. Enumerable.Range(0, 100).Select(i => Session($"bbbbbbbbbbbb-{i}", "2026-01-02T00:00:00Z"))];

    [Theory]
    [InlineData("not JSON", "not valid JSON")]
    [InlineData("JSON cut short", "not valid JSON")]
    [InlineData("an object", "a JSON object, not a list of sessions")]
    [InlineData("a session without its times", "item 1 of its list is not a session")]
    [InlineData("a time that is not one", "item 0 of its list is not a session")]
    [InlineData("a list of numbers", "item 0 of its list is not a session")]
    [InlineData("a list over the limit", "larger than the router's limit of 4096 bytes")]
    [InlineData("a list over the limit, its length told", "larger than the router's limit of 4096 bytes")]
    [InlineData("an id that is not UTF-8", "not valid JSON (it is not UTF-8)")]
    [InlineData("an id that is half a surrogate pair", "item 0 of its list is not a session")]
    public async Task A_replicas_answer_that_is_not_a_list_of_sessions_is_a_502_naming_the_replica_and_logged_once(string what, string problem)
    {
        await using var first = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "aaaaaaaaaaaa");
        await using var second = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "bbbbbbbbbbbb");
        first.SessionsAnswer = () => Results.Json(new[] { Session("aaaaaaaaaaaa-1", "2026-01-01T00:00:00Z") });
        second.SessionsAnswer = () => InvalidAnswer(what);
        var capture = new CapturingLoggerProvider();
        await using var router = await RouterHost.StartAsync(["--Router:SessionListMaxBytes=4096"], builder => builder.Logging.AddProvider(capture), first.Address, second.Address);
        await router.WaitForStoresAsync(first.Address, second.Address);

        using var response = await router.Client.GetAsync(new Uri("/api/sessions", UriKind.Relative));

        Assert.True(response.StatusCode == HttpStatusCode.BadGateway, $"{what}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var detail = error.RootElement.GetProperty("error");
        Assert.Equal(("server_error", "session_replica_invalid_answer"), (detail.GetProperty("type").GetString(), detail.GetProperty("code").GetString()));
        var message = detail.GetProperty("message").GetString()!;
        Assert.Contains(RouterApplication.ReplicaName(second.Address), message, StringComparison.Ordinal);
        Assert.Contains(problem, message, StringComparison.Ordinal);
        Assert.DoesNotContain(RouterApplication.ReplicaName(first.Address), message, StringComparison.Ordinal);
        Assert.Single(capture.Events, e => e.Name == "LogInvalidAnswer");
        Assert.DoesNotContain(capture.Events, e => e.Name?.Contains("Exception", StringComparison.OrdinalIgnoreCase) == true);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_list_of_exactly_the_cap_is_merged_and_one_a_byte_longer_is_a_502(bool lengthTold)
    {
        // Past the first buffer (16 KiB), so the buffer grows, and not a power of two, so its last growth stops at the cap.
        const int cap = 100_000;
        await using var first = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "aaaaaaaaaaaa");
        await using var second = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "bbbbbbbbbbbb");
        first.SessionsAnswer = () => Results.Json(new[] { Session("aaaaaaaaaaaa-1", "2026-01-01T00:00:00Z") });
        var capture = new CapturingLoggerProvider();
        await using var router = await RouterHost.StartAsync([$"--Router:SessionListMaxBytes={cap}"], builder => builder.Logging.AddProvider(capture), first.Address, second.Address);
        await router.WaitForStoresAsync(first.Address, second.Address);

        var atCap = ListOfLength(cap);
        second.SessionsAnswer = () => Answer(atCap);
        using (var response = await router.Client.GetAsync(new Uri("/api/sessions", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var list = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var sessions = list.RootElement.EnumerateArray().ToArray();
            Assert.Equal(new[] { "bbbbbbbbbbbb-1", "aaaaaaaaaaaa-1" }, sessions.Select(s => s.GetProperty("id").GetString()!).ToArray());

            // Its last byte too: the list as the replica wrote it.
            Assert.Equal(atCap, JsonSerializer.SerializeToUtf8Bytes(new[] { sessions[0] }));
        }

        second.SessionsAnswer = () => Answer(ListOfLength(cap + 1));
        using var refused = await router.Client.GetAsync(new Uri("/api/sessions", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadGateway, refused.StatusCode);
        using var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
        Assert.Equal("session_replica_invalid_answer", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains($"larger than the router's limit of {cap} bytes", error.RootElement.GetProperty("error").GetProperty("message").GetString()!, StringComparison.Ordinal);
        Assert.Single(capture.Events, e => e.Name == "LogInvalidAnswer");

        IResult Answer(byte[] list) => lengthTold ? Results.Bytes(list, "application/json") : Results.Stream(s => s.WriteAsync(list).AsTask(), "application/json");
    }

    /// <summary>A list of one session, exactly <paramref name="length"/> bytes long (its title fills it out).</summary>
    private static byte[] ListOfLength(int length)
    {
        var empty = JsonSerializer.SerializeToUtf8Bytes(new[] { new { id = "bbbbbbbbbbbb-1", title = "", createdAt = "2026-01-01T00:00:00Z", updatedAt = "2026-01-02T00:00:00Z" } });
        var list = JsonSerializer.SerializeToUtf8Bytes(new[] { new { id = "bbbbbbbbbbbb-1", title = new string('t', length - empty.Length), createdAt = "2026-01-01T00:00:00Z", updatedAt = "2026-01-02T00:00:00Z" } });
        Assert.Equal(length, list.Length);
        return list;
    }

    [Theory]
    [InlineData("over the limit")]
    [InlineData("over the limit, its length told")]
    public async Task A_replicas_refusal_whose_error_is_over_the_limit_keeps_its_status_with_the_routers_error_in_its_place(string how)
    {
        const string problem = "larger than the router's limit of 4096 bytes";
        await using var first = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "aaaaaaaaaaaa");
        await using var second = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "bbbbbbbbbbbb");
        first.SessionsAnswer = () => Results.Json(new[] { Session("aaaaaaaaaaaa-1", "2026-01-01T00:00:00Z") });
        second.SessionsAnswer = () => new RateLimitRefusal(how);
        var capture = new CapturingLoggerProvider();
        await using var router = await RouterHost.StartAsync(["--Router:SessionListMaxBytes=4096"], builder => builder.Logging.AddProvider(capture), first.Address, second.Address);
        await router.WaitForStoresAsync(first.Address, second.Address);

        using var response = await router.Client.GetAsync(new Uri("/api/sessions", UriKind.Relative));

        Assert.True(response.StatusCode == HttpStatusCode.TooManyRequests, $"{how}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        Assert.Equal(TimeSpan.FromSeconds(7), response.Headers.RetryAfter?.Delta);
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var detail = error.RootElement.GetProperty("error");
        Assert.Equal(("rate_limit_error", "session_replica_refused"), (detail.GetProperty("type").GetString(), detail.GetProperty("code").GetString()));
        var message = detail.GetProperty("message").GetString()!;
        Assert.Contains($"replica {RouterApplication.ReplicaName(second.Address)} refused with HTTP 429", message, StringComparison.Ordinal);
        Assert.Contains(problem, message, StringComparison.Ordinal);
        Assert.Single(capture.Events, e => e.Name == "LogRefusalUnreadable");
        Assert.DoesNotContain(capture.Events, e => e.Name == "LogInvalidAnswer");
    }

    [Fact]
    public async Task A_replica_that_fails_makes_the_list_unavailable_without_waiting_for_the_others_and_they_are_let_go_of()
    {
        await using var first = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "aaaaaaaaaaaa");
        await using var second = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "bbbbbbbbbbbb");
        var firstAsked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var firstLetGo = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        first.SessionsAnswer = () => new SilentUntilLetGo(firstAsked, firstLetGo);

        // Fails only once the first replica holds the router's request, so there is one to let go of.
        second.SessionsAnswer = () => new AbortedOnce(firstAsked.Task);
        var capture = new CapturingLoggerProvider();

        // The listing's deadline stays the test default (5 min, past the client's 180 s): the old wait for the silent replica fails the test.
        await using var router = await RouterHost.StartAsync([], builder => builder.Logging.AddProvider(capture), first.Address, second.Address);
        await router.WaitForStoresAsync(first.Address, second.Address);

        using var response = await router.Client.GetAsync(new Uri("/api/sessions", UriKind.Relative));

        await AssertSessionReplicaUnavailableAsync(response);
        await firstLetGo.Task.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Contains(capture.Lines, l => l.StartsWith($"Replica {second.Address} did not list its sessions", StringComparison.Ordinal));

        // Let go of, it did not fail.
        Assert.DoesNotContain(capture.Lines, l => l.StartsWith($"Replica {first.Address}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_replica_that_sends_its_headers_and_then_never_its_list_makes_the_list_unavailable_at_the_listing_deadline()
    {
        await using var first = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "aaaaaaaaaaaa");
        await using var second = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "bbbbbbbbbbbb");
        first.SessionsAnswer = () => Results.Json(new[] { Session("aaaaaaaaaaaa-1", "2026-01-01T00:00:00Z") });
        second.SessionsAnswer = () => new HeadersThenSilence();
        var capture = new CapturingLoggerProvider();

        // Far below the activity timeout (10 min) that held the list before; whenever it passes, the stalled replica has not answered.
        await using var router = await RouterHost.StartAsync(["--Router:SessionListTimeout=00:00:01"], builder => builder.Logging.AddProvider(capture), first.Address, second.Address);
        await router.WaitForStoresAsync(first.Address, second.Address);

        using var response = await router.Client.GetAsync(new Uri("/api/sessions", UriKind.Relative));

        await AssertSessionReplicaUnavailableAsync(response);
        Assert.Contains(capture.Lines, l => l.StartsWith($"Replica {second.Address} did not list its sessions: no answer within 00:00:01", StringComparison.Ordinal));
        Assert.DoesNotContain(capture.Events, e => e.Name == "LogInvalidAnswer");
    }

    [Fact]
    public async Task While_a_replica_never_reported_its_store_the_list_and_a_session_of_an_unknown_store_are_unavailable()
    {
        await using var first = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "aaaaaaaaaaaa");
        await using var second = await FakeReplica.StartAsync(refusesAsDraining: false, sessionStore: "bbbbbbbbbbbb");

        // Takes connections and never answers: its readiness (and so its store) is never read.
        var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        try
        {
            await using var router = await RouterHost.StartAsync(first.Address, second.Address, $"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}");
            await router.WaitForStoresAsync(first.Address, second.Address);

            using var list = await router.Client.GetAsync(new Uri("/api/sessions", UriKind.Relative));
            await AssertSessionReplicaUnavailableAsync(list);

            // Its store may be the silent replica's: not a 404 from a replica that never had it.
            using var session = await router.Client.GetAsync(new Uri("/api/sessions/cccccccccccc-1", UriKind.Relative));
            await AssertSessionReplicaUnavailableAsync(session);
        }
        finally
        {
            silent.Stop();
        }
    }

    private static async Task AssertSessionReplicaUnavailableAsync(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("session_replica_unavailable", error.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    /// <summary>Sends its status and headers, then nothing more until the router lets go of the request.</summary>
    private sealed class HeadersThenSilence : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.ContentType = "application/json";
            await httpContext.Response.StartAsync();
            await httpContext.Response.Body.FlushAsync();
            await Task.Delay(Timeout.Infinite, httpContext.RequestAborted).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>A 429 with <c>Retry-After: 7</c> whose error is over the tests' 4 KiB limit, its length told or not.</summary>
    private sealed class RateLimitRefusal(string how) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            var error = JsonSerializer.SerializeToUtf8Bytes(new { error = new { message = new string('x', 8192), type = "rate_limit_error", param = (string?)null, code = "rate_limit_exceeded" } });
            var response = httpContext.Response;
            response.StatusCode = StatusCodes.Status429TooManyRequests;
            response.Headers.RetryAfter = "7";
            response.ContentType = "application/json";
            if (how == "over the limit, its length told")
            {
                response.ContentLength = error.Length;
            }

            await response.Body.WriteAsync(error);
        }
    }

    /// <summary>Says it was asked, then answers nothing until the router lets go of the request, and says that too.</summary>
    private sealed class SilentUntilLetGo(TaskCompletionSource asked, TaskCompletionSource letGo) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            asked.TrySetResult();
            await Task.Delay(Timeout.Infinite, httpContext.RequestAborted).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            letGo.TrySetResult();
        }
    }

    /// <summary>Drops the connection without an answer once <paramref name="after"/> has happened.</summary>
    private sealed class AbortedOnce(Task after) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            await after;
            httpContext.Abort();
        }
    }

    private static object Session(string id, string updatedAt) => new { id, title = id, createdAt = "2026-01-01T00:00:00Z", updatedAt };
}

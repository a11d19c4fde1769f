using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;
using LlmServer.Router.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

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

    private static object Session(string id, string updatedAt) => new { id, title = id, createdAt = "2026-01-01T00:00:00Z", updatedAt };
}

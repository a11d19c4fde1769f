using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LlmServer.Tests.Infrastructure;

namespace LlmServer.Tests.Operations;

/// <summary>Sessions belong to the API key that created them: another key can neither read, list nor delete them.</summary>
public sealed class SessionOwnershipTests
{
    [Fact]
    public async Task Another_key_gets_404_for_a_session_it_does_not_own()
    {
        var data = Directory.CreateTempSubdirectory("llmserver-sessions-");
        try
        {
            await using var server = await TestServer.StartAsync(extraArgs:
                [$"--Auth:ApiKeys:0={AuthTests.KeyA}", $"--Auth:ApiKeys:1={AuthTests.KeyB}", $"--Sessions:Database={Path.Combine(data.FullName, "sessions.db")}"]);

            string id;
            using (var created = await AuthTests.SendAsync(server, HttpMethod.Post, "/api/sessions", AuthTests.KeyA, JsonContent.Create(new { title = "A's secrets" })))
            {
                Assert.Equal(HttpStatusCode.Created, created.StatusCode);
                using var json = JsonDocument.Parse(await created.Content.ReadAsStringAsync());
                id = json.RootElement.GetProperty("id").GetString()!;
            }

            using (var read = await AuthTests.SendAsync(server, HttpMethod.Get, $"/api/sessions/{id}", AuthTests.KeyB))
            {
                Assert.Equal(HttpStatusCode.NotFound, read.StatusCode);
            }

            using (var list = await AuthTests.SendAsync(server, HttpMethod.Get, "/api/sessions", AuthTests.KeyB))
            {
                Assert.Equal(HttpStatusCode.OK, list.StatusCode);
                Assert.DoesNotContain(id, await list.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            using (var delete = await AuthTests.SendAsync(server, HttpMethod.Delete, $"/api/sessions/{id}", AuthTests.KeyB))
            {
                Assert.Equal(HttpStatusCode.NotFound, delete.StatusCode);
            }

            using (var owner = await AuthTests.SendAsync(server, HttpMethod.Get, $"/api/sessions/{id}", AuthTests.KeyA))
            {
                Assert.Equal(HttpStatusCode.OK, owner.StatusCode);
            }

            using (var ownerList = await AuthTests.SendAsync(server, HttpMethod.Get, "/api/sessions", AuthTests.KeyA))
            {
                Assert.Contains(id, await ownerList.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }
}

using LlmServer.Operations;
using LlmServer.Sessions;
using LlmServer.Tests.Infrastructure;
using Microsoft.AspNetCore.SignalR.Client;
using static LlmServer.Tests.Sessions.HubTestExtensions;

namespace LlmServer.Tests.Sessions;

/// <summary>Tests that need servers of their own: restarts on one database file, and a short resume grace.</summary>
[Collection(SessionsCollection.Name)]
public sealed class SessionPersistenceTests
{
    [Fact]
    public async Task Sessions_survive_a_restart_and_their_KV_comes_back_from_disk()
    {
        var first = await SessionTestServer.StartAsync();
        try
        {
            SessionInfo session;
            ChatStreamEvent firstTurn;
            SessionDetail before;
            await using (first)
            {
                await using var hub = await first.ConnectAsync();
                session = await hub.CreateAsync(maxTokens: 12, systemPrompt: "Stories for children.", title: "Kept");
                firstTurn = AssertWellFormed(await hub.Send(session.Id, "Tom had a dog").CollectAsync());
                before = await hub.GetAsync(session.Id);
            }

            await using var second = await SessionTestServer.StartAsync(first.Database);
            await using var again = await second.ConnectAsync();
            var listed = await again.InvokeAsync<SessionInfo[]>("ListSessions");
            var info = Assert.Single(listed);
            Assert.Equal(before.Info, info);
            var after = await again.GetAsync(session.Id);
            Assert.Equal(before.Messages, after.Messages);
            Assert.Equal("Kept", after.Info.Title);

            // The first server saved the session's KV at shutdown (beside the database): the new one restores it
            // instead of prefilling the history.
            var secondTurn = AssertWellFormed(await again.Send(session.Id, "The dog was big").CollectAsync());
            Assert.Equal(ChatStreamEvent.DoneType, secondTurn.Type);
            Assert.True(secondTurn.Usage!.PromptTokens > firstTurn.Usage!.PromptTokens + firstTurn.Usage.CompletionTokens - 2);
            Assert.True(
                secondTurn.Usage.CachedTokens >= firstTurn.Usage.PromptTokens + firstTurn.Usage.CompletionTokens - 1,
                $"cached {secondTurn.Usage.CachedTokens} of the first turn's {firstTurn.Usage.PromptTokens} + {firstTurn.Usage.CompletionTokens}");
            Assert.Equal(4, (await again.GetAsync(session.Id)).Messages.Count);
        }
        finally
        {
            first.DeleteFiles();
        }
    }

    [Fact]
    public async Task A_generation_nobody_resumes_is_stopped_after_the_grace_period_and_stored_as_cancelled()
    {
        // The decode gate keeps the answer from finishing on its own; it opens once the grace's end cancelled it.
        var gate = new DecodeGate();
        HeldGenerator? held = null;
        var server = await SessionTestServer.StartAsync(
            null,
            services =>
            {
                gate.Install(services);
                OperationsExtensions.DecorateTextGenerator(services, (_, engine) => held = new HeldGenerator(engine));
            },
            "--Sessions:ResumeGraceSeconds=0");
        try
        {
            await using (server)
            {
                var hub = await server.ConnectAsync();
                var session = await hub.CreateAsync(maxTokens: 400);
                gate.CloseAfter(4);
                var seen = new List<ChatStreamEvent>();
                try
                {
                    await hub.Send(session.Id, "Once upon a time").ReadEachAsync(async (item, cancellationToken) =>
                    {
                        seen.Add(item);
                        await hub.StopAsync(cancellationToken);
                    });
                }
                catch (OperationCanceledException)
                {
                    // The stream ends with the connection.
                }
                finally
                {
                    await hub.DisposeAsync();
                }

                await held!.Cancelled;
                gate.Open();
                await using var again = await server.ConnectAsync();
                var detail = await again.WaitIdleAsync(session.Id);
                var assistant = detail.Messages[^1];
                Assert.Equal(("assistant", "cancelled"), (assistant.Role, assistant.FinishReason));
                Assert.StartsWith(Text(seen), assistant.Content, StringComparison.Ordinal);
                Assert.True(assistant.CompletionTokens < 400);
            }
        }
        finally
        {
            gate.Open();
            server.DeleteFiles();
        }
    }

    [Fact]
    public async Task Shutting_down_stores_a_running_generation_as_cancelled()
    {
        // The decode gate keeps the answer from finishing on its own (stories260K writes 400 tokens in well under a
        // second); it opens only once the shutdown has cancelled the generation.
        var gate = new DecodeGate();
        HeldGenerator? held = null;
        var server = await SessionTestServer.StartAsync(null, services =>
        {
            gate.Install(services);
            OperationsExtensions.DecorateTextGenerator(services, (_, engine) => held = new HeldGenerator(engine));
        });
        try
        {
            string id;
            string received;
            await using (var hub = await server.ConnectAsync())
            {
                var session = await hub.CreateAsync(maxTokens: 400);
                id = session.Id;
                gate.CloseAfter(4);
                await using var stream = hub.Send(id, "Once upon a time").GetAsyncEnumerator();
                Assert.True(await stream.MoveNextAsync());
                received = stream.Current.Text!;
            }

            await gate.Blocked;
            var stopping = server.DisposeAsync().AsTask();
            await held!.Cancelled;
            gate.Open();
            await stopping;

            await using var restarted = await SessionTestServer.StartAsync(server.Database);
            await using var again = await restarted.ConnectAsync();
            var assistant = (await again.GetAsync(id)).Messages[^1];
            Assert.Equal(("assistant", "cancelled"), (assistant.Role, assistant.FinishReason));
            Assert.StartsWith(received, assistant.Content, StringComparison.Ordinal);
            Assert.True(assistant.CompletionTokens < 400);
        }
        finally
        {
            gate.Open();
            server.DeleteFiles();
        }
    }
}

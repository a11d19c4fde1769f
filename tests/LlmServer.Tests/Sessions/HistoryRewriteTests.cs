using LlmServer.Sessions;
using LlmServer.Testing;
using LlmServer.Tests.Infrastructure;
using Microsoft.AspNetCore.SignalR.Client;
using Xunit.Abstractions;
using static LlmServer.Tests.Sessions.HubTestExtensions;

namespace LlmServer.Tests.Sessions;

/// <summary>
/// A regenerate or an edit after the context window slid, on a real Llama-2 tokenizer (llama-2-tiny-random): the
/// prompt is made of the tokens the conversation had (its answers' own tokens, the slid window's pieces), not of its
/// stored text tokenized again, which need not give them back; so it answers as the conversation did, or would have.
/// </summary>
public sealed class HistoryRewriteTests(ITestOutputHelper output)
{
    private static readonly string[] Lines =
    [
        "Tom had a red ball and he liked to play with it in the park.",
        "One day the ball rolled away into the big green bushes.",
        "Lily saw a little bird sitting on a branch of the tall tree.",
        "The sun was warm and the children ran to the river to swim.",
    ];

    // Sampled at temperature 1 from a fixed seed: the random model's answers are token soup that tokenizing their text
    // again does not give back (its greedy answers happen to tokenize back), and each request samples the same way
    // again from the same prompt tokens.
    private static readonly CreateSessionRequest Settings = new(null, "You tell short stories.", new SessionSettings(Temperature: 1, MaxTokens: 48, Seed: 1));

    [Fact]
    public async Task After_the_window_slid_a_regenerate_and_an_edit_answer_with_the_tokens_the_conversation_had()
    {
        var folder = Directory.CreateTempSubdirectory("llmserver-history-rewrite-");
        try
        {
            // 256-token slots: the window slides after a few turns.
            await using var server = await TestServer.StartAsync(
                TestModels.TinyRandomLlama2,
                [
                    "--Scheduler:ContextSize=1024", $"--Sessions:Database={Path.Combine(folder.FullName, "sessions.db")}",
                    $"--Sessions:KvCacheDirectory={Path.Combine(folder.FullName, "kv-cache")}",
                ]);
            await using var hub = new HubConnectionBuilder().WithUrl(new Uri(server.BaseAddress, "/hubs/chat")).Build();
            await hub.StartAsync();

            // Talk until a turn keeps a window that has slid.
            var session = await hub.InvokeAsync<SessionInfo>("CreateSession", Settings);
            var turns = new List<(string Text, ChatStreamEvent Done)>();
            for (var t = 0; t < 30 && !(t >= 2 && turns[^1].Done.ContextStart > 0 && turns[^1].Done.ContextStart == turns[^2].Done.ContextStart); t++)
            {
                turns.Add(await TurnAsync(hub.Send(session.Id, Line(t))));
            }

            var last = turns.Count - 1;
            Assert.True(turns[last].Done.ContextStart > 0, "the window never slid");

            // Regenerating the last answer prompts with the tokens that answer had, all still in the KV cache but the one
            // decoded again for its logits: the same count, the same answer.
            var regenerated = await TurnAsync(hub.StreamAsync<ChatStreamEvent>("Regenerate", session.Id));
            Assert.Equal(turns[last].Done.Usage!.PromptTokens, regenerated.Done.Usage!.PromptTokens);
            Assert.Equal(regenerated.Done.Usage.PromptTokens - 1, regenerated.Done.Usage.CachedTokens);
            Assert.Equal(turns[last].Text, regenerated.Text);

            // The same conversation with another last message, in a session whose KV followed it turn by turn.
            var other = await hub.InvokeAsync<SessionInfo>("CreateSession", Settings);
            for (var t = 0; t < last; t++)
            {
                Assert.Equal(turns[t].Text, (await TurnAsync(hub.Send(other.Id, Line(t)))).Text);
            }

            const string Changed = "The little dog found the ball under the bench.";
            var kept = await TurnAsync(hub.Send(other.Id, Changed));

            // Editing the last message to that one answers as that session did, from the same prompt tokens.
            var edited = await TurnAsync(hub.StreamAsync<ChatStreamEvent>("EditMessage", session.Id, 2 * last, Changed));
            Assert.Equal(kept.Done.ContextStart, edited.Done.ContextStart);
            Assert.Equal(kept.Done.Usage!.PromptTokens, edited.Done.Usage!.PromptTokens);
            Assert.Equal(kept.Text, edited.Text);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    private static string Line(int turn) => $"{Lines[turn % Lines.Length]} ({turn})";

    private async Task<(string Text, ChatStreamEvent Done)> TurnAsync(IAsyncEnumerable<ChatStreamEvent> stream)
    {
        var events = await stream.CollectAsync();
        var done = AssertWellFormed(events);
        Assert.Equal(ChatStreamEvent.DoneType, done.Type);
        output.WriteLine($"window from {done.ContextStart}, {done.Usage!.PromptTokens} prompt tokens ({done.Usage.CachedTokens} cached)");
        return (Text(events), done);
    }
}

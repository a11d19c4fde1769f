using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using FunctionCallContent = Microsoft.Extensions.AI.FunctionCallContent;
using FunctionResultContent = Microsoft.Extensions.AI.FunctionResultContent;

namespace LlmServer.Extensions.Tests;

/// <summary>
/// A host of its own: function-invocation loops add calls, logs and activities that the middleware tests, which
/// read the shared host's records, must not see.
/// </summary>
[CollectionDefinition(Name)]
public sealed class ToolEngineHostCollection : ICollectionFixture<EngineHostFixture>
{
    public const string Name = "In-process engine host for tool calling";
}

/// <summary>
/// Tools in-process on stories260K. A tiny model never calls on its own, so the first round requires a call
/// (the grammar makes it valid); the invokers then run the function and send its result back.
/// </summary>
[Collection(ToolEngineHostCollection.Name)]
public sealed class ToolCallingTests(EngineHostFixture host)
{
    [Fact]
    public async Task A_required_call_comes_back_as_function_call_content()
    {
        var options = Options(ChatToolMode.RequireAny, Add(() => { }));

        var response = await host.ChatClient.GetResponseAsync("Add two and three.", options);

        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.ToolCalls, response.FinishReason);
        var call = Assert.Single(response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>());
        Assert.Equal("add", call.Name);
        Assert.StartsWith("call_", call.CallId, StringComparison.Ordinal);
        AssertDigits(call.Arguments!);
    }

    [Fact]
    public async Task A_streamed_call_comes_whole()
    {
        var options = Options(ChatToolMode.RequireSpecific("add"), Add(() => { }));

        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in host.ChatClient.GetStreamingResponseAsync("Add two and three.", options))
        {
            updates.Add(update);
        }

        var call = Assert.Single(updates.SelectMany(u => u.Contents).OfType<FunctionCallContent>());
        Assert.Equal("add", call.Name);
        AssertDigits(call.Arguments!);
        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.ToolCalls, updates[^1].FinishReason);
    }

    [Fact]
    public async Task UseFunctionInvocation_runs_the_function_and_sends_its_result_back()
    {
        var invoked = 0;
        using var client = new ChatClientBuilder(host.ChatClient).UseFunctionInvocation().Build();
        var options = Options(ChatToolMode.RequireAny, Add(() => Interlocked.Increment(ref invoked)));

        var response = await client.GetResponseAsync("Add two and three.", options);

        // The invoker lifts the requirement after the first round (else it would loop); the model then answers.
        Assert.True(invoked >= 1);
        var contents = response.Messages.SelectMany(m => m.Contents).ToList();
        var call = contents.OfType<FunctionCallContent>().First();
        var result = Assert.IsType<FunctionResultContent>(contents.First(c => c is FunctionResultContent r && r.CallId == call.CallId));
        Assert.Equal(Sum(call.Arguments!), Convert.ToInt32(((JsonElement)result.Result!).GetInt32()));
    }

    [Fact]
    public async Task Function_results_in_history_are_accepted_and_none_gives_text()
    {
        List<Microsoft.Extensions.AI.ChatMessage> history =
        [
            new(ChatRole.User, "Add two and three."),
            new(ChatRole.Assistant, [new FunctionCallContent("call_1", "add", new Dictionary<string, object?> { ["a"] = 2, ["b"] = 3 })]),
            new(ChatRole.Tool, [new FunctionResultContent("call_1", 5)]),
        ];

        var response = await host.ChatClient.GetResponseAsync(history, Options(ChatToolMode.None, Add(() => { })));

        Assert.Empty(response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>());
        Assert.False(string.IsNullOrEmpty(response.Text));
    }

    [Fact]
    public async Task Semantic_kernel_required_runs_the_plugin_function()
    {
        var plugin = new Calculator();
        var kernel = host.Kernel.Clone();
        kernel.Plugins.AddFromObject(plugin, "calc");
        var settings = new PromptExecutionSettings
        {
            FunctionChoiceBehavior = FunctionChoiceBehavior.Required(),
            ExtensionData = new Dictionary<string, object> { ["temperature"] = 0, ["max_tokens"] = 120 },
        };
        var history = new ChatHistory();
        history.AddUserMessage("Add two and three.");
        host.Calls.Clear();

        var reply = await kernel.GetRequiredService<IChatCompletionService>().GetChatMessageContentAsync(history, settings, kernel);

        Assert.True(plugin.Calls >= 1);
        Assert.Contains(history, m => m.Items.OfType<Microsoft.SemanticKernel.FunctionResultContent>().Any());
        Assert.NotNull(reply);
    }

    [Fact]
    public async Task Semantic_kernel_auto_offers_the_plugin_and_answers()
    {
        var plugin = new Calculator();
        var kernel = host.Kernel.Clone();
        kernel.Plugins.AddFromObject(plugin, "calc");
        var settings = new PromptExecutionSettings
        {
            FunctionChoiceBehavior = FunctionChoiceBehavior.Auto(),
            ExtensionData = new Dictionary<string, object> { ["temperature"] = 0, ["max_tokens"] = 40 },
        };
        host.Calls.Clear();

        var reply = await kernel.InvokePromptAsync("Add two and three.", new KernelArguments(settings));

        Assert.NotNull(reply.GetValue<string>());
        var offered = host.Calls.First().Options!;
        Assert.Contains(offered.Tools!, t => t.Name.EndsWith("add", StringComparison.Ordinal));
        Assert.IsType<AutoChatToolMode>(offered.ToolMode);
    }

    private static ChatOptions Options(ChatToolMode mode, AIFunction add) => new()
    {
        Temperature = 0,
        MaxOutputTokens = 120,
        ToolMode = mode,
        AllowMultipleToolCalls = false,
        Tools = [add],
    };

    private static AIFunction Add(Action onCall) => AIFunctionFactory.Create(
        ([Range(0, 9)] int a, [Range(0, 9)] int b) =>
        {
            onCall();
            return a + b;
        },
        "add",
        "Add two digits.");

    private static void AssertDigits(IDictionary<string, object?> arguments)
    {
        Assert.Equal(["a", "b"], arguments.Keys.Order());
        Assert.InRange(Sum(arguments), 0, 18);
    }

    private static int Sum(IDictionary<string, object?> arguments) =>
        ((JsonElement)arguments["a"]!).GetInt32() + ((JsonElement)arguments["b"]!).GetInt32();

    private sealed class Calculator
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        [KernelFunction("add")]
        [Description("Add two digits.")]
        public int Add([Range(0, 9)] int a, [Range(0, 9)] int b)
        {
            Interlocked.Increment(ref _calls);
            return a + b;
        }
    }
}

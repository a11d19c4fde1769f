using LlmServer.Engine.Generation;
using LlmServer.Operations.Limits;

namespace LlmServer.OpenAi;

/// <summary><c>POST /v1/chat/completions</c>, streamed or not, and llama-server's <c>POST /apply-template</c>.</summary>
internal sealed class ChatCompletionsEndpoint(ITextGenerator generator, OpenAiResponder responder)
{
    /// <summary>The body of a chat completion in, <c>{"prompt": "..."}</c> out: exactly the prompt the engine would run.</summary>
    public async Task ApplyTemplateAsync(HttpContext context)
    {
        var aborted = context.RequestAborted;
        var request = await JsonBodyReader.ReadAsync(context, OpenAiJson.Context.ChatCompletionRequest, aborted);
        var model = OpenAiRequestMapper.ResolveModel(generator, request.Model);
        var generation = OpenAiRequestMapper.MapChat(request, model, OpenAiResponder.NewId("tmpl-"));
        var prompt = generator.RenderPrompt(generation);
        await context.Response.WriteAsJsonAsync(new ApplyTemplateResponse(prompt), OpenAiJson.Context.ApplyTemplateResponse, contentType: null, aborted);
    }

    public async Task HandleAsync(HttpContext context)
    {
        var aborted = context.RequestAborted;
        var request = await JsonBodyReader.ReadAsync(context, OpenAiJson.Context.ChatCompletionRequest, aborted);
        var model = OpenAiRequestMapper.ResolveModel(generator, request.Model);
        var id = OpenAiResponder.NewId("chatcmpl-");
        var generation = OpenAiRequestMapper.MapChat(request, model, id, RequestLane.Of(context));
        var created = responder.UnixNow();
        var fingerprint = OpenAiResponder.Fingerprint(model);

        // Refusals (queue full, prompt too long, not ready) throw here, before any byte of the response.
        await using var stream = generator.Submit(generation, aborted);
        context.ReleasePermitWhenEnded(stream);
        if (request.Stream == true)
        {
            using var sse = SseWriter.Start(context);
            var formatter = new ChatChunkFormatter(sse, id, created, model.Id, fingerprint, generation.LogProbs);
            var source = new StreamSource([stream], generation.Choices, id);
            await responder.StreamAsync(formatter, sse, source, request.StreamOptions?.IncludeUsage == true);
            return;
        }

        var result = await stream.CollectAsync(aborted);
        if (!OpenAiResponder.EnsureSucceeded(result.Choices.Select(c => c.Completion), aborted))
        {
            return;
        }

        var choices = result.Choices.Select(c => new ChatChoice(
            c.Index,
            new AssistantMessage("assistant", c.ToolCalls.Count > 0 && c.Text.Length == 0 ? null : c.Text)
            {
                ReasoningContent = c.Reasoning,
                ToolCalls = c.ToolCalls.Count == 0 ? null : c.ToolCalls.Select(t => new ResponseToolCall(t.Id, "function", new ResponseFunctionCall(t.Name, t.Arguments))).ToList(),
            },
            generation.LogProbs ? new ChatLogProbs(OpenAiLogProbs.ToChat(c.LogProbs ?? [])) : null,
            c.Completion.FinishReason.ToName())).ToList();
        var first = result.Choices[0].Completion.Usage;
        var completionTokens = result.Choices.Sum(c => c.Completion.Usage.CompletionTokens);
        var response = new ChatCompletionResponse(
            id,
            "chat.completion",
            created,
            model.Id,
            fingerprint,
            choices,
            new Usage(first.PromptTokens, completionTokens, first.PromptTokens + completionTokens, new PromptTokensDetails(first.CachedPromptTokens))
            {
                CompletionTokensDetails = Usage.ReasoningDetails(result.Choices.Sum(c => c.Completion.Usage.ReasoningTokens)),
            });
        await context.Response.WriteAsJsonAsync(response, OpenAiJson.Context.ChatCompletionResponse, contentType: null, aborted);
    }
}

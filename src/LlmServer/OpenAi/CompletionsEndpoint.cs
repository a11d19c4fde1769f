using LlmServer.Engine.Generation;
using LlmServer.Operations.Limits;

namespace LlmServer.OpenAi;

/// <summary>
/// <c>POST /v1/completions</c> (legacy): a prompt string or an array of them; every prompt is admitted before
/// anything is answered, so a refusal of any one refuses the request.
/// </summary>
internal sealed class CompletionsEndpoint(ITextGenerator generator, OpenAiResponder responder)
{
    public async Task HandleAsync(HttpContext context)
    {
        var aborted = context.RequestAborted;
        var request = await JsonBodyReader.ReadAsync(context, OpenAiJson.Context.CompletionRequest, aborted);
        var model = OpenAiRequestMapper.ResolveModel(generator, request.Model);
        var prompts = OpenAiRequestMapper.Prompts(request);
        var id = OpenAiResponder.NewId("cmpl-");
        var generations = prompts
            .Select((prompt, i) => OpenAiRequestMapper.MapCompletion(request, prompt, prompts.Count, model, prompts.Count == 1 ? id : $"{id}-{i}", RequestLane.Of(context)))
            .ToList();
        var choicesPerPrompt = generations[0].Choices;
        var created = responder.UnixNow();
        var fingerprint = OpenAiResponder.Fingerprint(model);
        var echo = request.Echo == true;

        var streams = new List<GenerationStream>(generations.Count);
        try
        {
            foreach (var generation in generations)
            {
                streams.Add(generator.Submit(generation, aborted));
            }

            context.ReleasePermitWhenEnded(streams);

            if (request.Stream == true)
            {
                using var sse = SseWriter.Start(context);
                var formatter = new CompletionChunkFormatter(
                    sse, id, created, model.Id, fingerprint, streams.Count * choicesPerPrompt, choice => echo ? prompts[choice / choicesPerPrompt] : null, generations[0].LogProbs);
                await responder.StreamAsync(formatter, sse, new StreamSource(streams, choicesPerPrompt, id), request.StreamOptions?.IncludeUsage == true);
                return;
            }

            var results = await Task.WhenAll(streams.Select(s => s.CollectAsync(aborted)));
            if (!OpenAiResponder.EnsureSucceeded(results.SelectMany(r => r.Choices).Select(c => c.Completion), aborted))
            {
                return;
            }

            var choices = new List<CompletionChoice>();
            var promptTokens = 0;
            var cachedTokens = 0;
            var completionTokens = 0;
            for (var p = 0; p < results.Length; p++)
            {
                var prefix = echo ? prompts[p] : string.Empty;
                promptTokens += streams[p].PromptTokens;
                cachedTokens += results[p].Choices[0].Completion.Usage.CachedPromptTokens;
                foreach (var choice in results[p].Choices)
                {
                    var offset = prefix.Length;
                    var logProbs = generations[p].LogProbs ? OpenAiLogProbs.ToCompletion(choice.LogProbs ?? [], ref offset) : null;
                    completionTokens += choice.Completion.Usage.CompletionTokens;
                    choices.Add(new CompletionChoice(
                        prefix + choice.Text,
                        (p * choicesPerPrompt) + choice.Index,
                        logProbs,
                        choice.Completion.FinishReason.ToName()));
                }
            }

            var response = new CompletionResponse(
                id,
                "text_completion",
                created,
                model.Id,
                fingerprint,
                choices,
                new Usage(promptTokens, completionTokens, promptTokens + completionTokens, new PromptTokensDetails(cachedTokens)));
            await context.Response.WriteAsJsonAsync(response, OpenAiJson.Context.CompletionResponse, contentType: null, aborted);
        }
        finally
        {
            foreach (var stream in streams)
            {
                await stream.DisposeAsync();
            }
        }
    }
}

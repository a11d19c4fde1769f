using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;

namespace LlmServer.OpenAi;

/// <summary><c>GET /v1/models</c>, <c>GET /v1/models/{id}</c>, and llama-server's <c>/tokenize</c> and <c>/detokenize</c>.</summary>
internal sealed class ModelAndTokenEndpoints(ITextGenerator generator, TimeProvider timeProvider)
{
    /// <summary>OpenAI's <c>created</c> for a model: when this server loaded it.</summary>
    private readonly long _loadedAt = timeProvider.GetUtcNow().ToUnixTimeSeconds();

    public Task ListModelsAsync(HttpContext context)
    {
        var model = generator.Model ?? throw OpenAiRequestMapper.NotReady(generator.State);
        return context.Response.WriteAsJsonAsync(new ModelList("list", [Card(model)]), OpenAiJson.Context.ModelList, contentType: null, context.RequestAborted);
    }

    public Task GetModelAsync(HttpContext context)
    {
        var id = context.Request.RouteValues["id"] as string ?? string.Empty;
        var model = OpenAiRequestMapper.ResolveModel(generator, id);
        if (id.Length == 0)
        {
            throw OpenAiRequestMapper.ModelNotFound(id);
        }

        return context.Response.WriteAsJsonAsync(Card(model), OpenAiJson.Context.ModelCard, contentType: null, context.RequestAborted);
    }

    public async Task TokenizeAsync(HttpContext context)
    {
        var request = await JsonBodyReader.ReadAsync(context, OpenAiJson.Context.TokenizeRequest, context.RequestAborted);
        _ = generator.Model ?? throw OpenAiRequestMapper.NotReady(generator.State);
        var content = request.Content ?? throw OpenAiException.InvalidField("content", "'content' is required.");
        var tokens = generator.Tokenize(content, request.AddSpecial ?? false, request.ParseSpecial ?? true);
        if (request.WithPieces == true)
        {
            var pieces = tokens.Select(t => new TokenPiece(t, generator.Detokenize([t]))).ToList();
            await context.Response.WriteAsJsonAsync(new TokenizeWithPiecesResponse(pieces), OpenAiJson.Context.TokenizeWithPiecesResponse, contentType: null, context.RequestAborted);
            return;
        }

        await context.Response.WriteAsJsonAsync(new TokenizeResponse(tokens), OpenAiJson.Context.TokenizeResponse, contentType: null, context.RequestAborted);
    }

    public async Task DetokenizeAsync(HttpContext context)
    {
        var request = await JsonBodyReader.ReadAsync(context, OpenAiJson.Context.DetokenizeRequest, context.RequestAborted);
        var model = generator.Model ?? throw OpenAiRequestMapper.NotReady(generator.State);
        var tokens = request.Tokens ?? throw OpenAiException.InvalidField("tokens", "'tokens' is required.");
        for (var i = 0; i < tokens.Count; i++)
        {
            if (tokens[i] < 0 || tokens[i] >= model.VocabularySize)
            {
                throw OpenAiException.InvalidField(
                    $"tokens[{i}]", $"Invalid token id {tokens[i]} at tokens[{i}]: ids run from 0 to {model.VocabularySize - 1}.");
            }
        }

        await context.Response.WriteAsJsonAsync(new DetokenizeResponse(generator.Detokenize(tokens)), OpenAiJson.Context.DetokenizeResponse, contentType: null, context.RequestAborted);
    }

    private ModelCard Card(ModelInfo model) => new(
        model.Id,
        "model",
        _loadedAt,
        "llmserver",
        model.SlotContextLength,
        new ModelMeta(
            model.Architecture,
            model.Name,
            model.ParameterCount,
            model.SizeInBytes,
            model.VocabularySize,
            model.TrainingContextLength,
            model.Slots,
            model.HasChatTemplate));
}

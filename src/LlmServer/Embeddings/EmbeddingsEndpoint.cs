using System.Runtime.InteropServices;
using System.Text.Json;
using LlmServer.Engine.Embeddings;
using LlmServer.Engine.Generation;
using LlmServer.OpenAi;

namespace LlmServer.Embeddings;

/// <summary>
/// <c>POST /v1/embeddings</c>: pooled, unit-length vectors from the embedding context (never a generation slot),
/// as float arrays or base64 (little-endian float32, as OpenAI sends them).
/// </summary>
internal sealed class EmbeddingsEndpoint(ITextEmbedder embedder, ITextGenerator generator)
{
    /// <summary>OpenAI's own limit on inputs per request.</summary>
    public const int MaxInputs = 2048;

    public async Task HandleAsync(HttpContext context)
    {
        var aborted = context.RequestAborted;
        var request = await JsonBodyReader.ReadAsync(context, EmbeddingsJson.Context.EmbeddingsRequest, aborted);
        var result = await EmbedAsync(request, aborted);
        context.Response.ContentType = "application/json";
        WriteResponse(context.Response.BodyWriter, result, request.EncodingFormat == "base64", embedder.ModelId);
        await context.Response.BodyWriter.FlushAsync(aborted);
    }

    /// <summary>Checks the request and embeds it; refusals are <see cref="OpenAiException"/>s naming the field.</summary>
    public async Task<EmbeddingResult> EmbedAsync(EmbeddingsRequest request, CancellationToken cancellationToken)
    {
        if (!string.IsNullOrEmpty(request.Model) && request.Model != embedder.ModelId && request.Model != generator.Model?.Id)
        {
            throw OpenAiRequestMapper.ModelNotFound(request.Model);
        }

        var inputs = request.Input ?? throw OpenAiException.InvalidField("input", "'input' is required.");
        if (inputs.Count is 0 or > MaxInputs)
        {
            throw OpenAiException.InvalidField("input", $"'input' must hold between 1 and {MaxInputs} items.");
        }

        if (request.EncodingFormat is not (null or "float" or "base64"))
        {
            throw OpenAiException.InvalidField("encoding_format", $"Invalid value for 'encoding_format': '{request.EncodingFormat}'. Supported values are float and base64.");
        }

        for (var i = 0; i < inputs.Count; i++)
        {
            if (inputs[i] is { Text: { Length: 0 } } or { Tokens: { Count: 0 } })
            {
                throw OpenAiException.InvalidField($"input[{i}]", $"input[{i}] is empty; every input needs at least one token.");
            }
        }

        try
        {
            return await embedder.EmbedAsync(inputs, request.Dimensions, cancellationToken);
        }
        catch (GenerationException ex)
        {
            throw OpenAiErrors.FromGeneration(ex);
        }
    }

    /// <summary>The OpenAI list object; a float is written as its shortest round-trip text.</summary>
    public static void WriteResponse(System.Buffers.IBufferWriter<byte> output, EmbeddingResult result, bool base64, string modelId)
    {
        using var writer = new Utf8JsonWriter(output, new JsonWriterOptions { Encoder = OpenAiJson.Encoder });
        writer.WriteStartObject();
        writer.WriteString("object", "list");
        writer.WriteStartArray("data");
        for (var i = 0; i < result.Vectors.Count; i++)
        {
            writer.WriteStartObject();
            writer.WriteString("object", "embedding");
            writer.WriteNumber("index", i);
            if (base64)
            {
                writer.WriteBase64String("embedding", MemoryMarshal.AsBytes(result.Vectors[i].AsSpan()));
            }
            else
            {
                writer.WriteStartArray("embedding");
                foreach (var value in result.Vectors[i])
                {
                    writer.WriteNumberValue(value);
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteString("model", modelId);
        writer.WriteStartObject("usage");
        writer.WriteNumber("prompt_tokens", result.PromptTokens);
        writer.WriteNumber("total_tokens", result.PromptTokens);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }
}

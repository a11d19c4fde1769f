using System.Text.Json.Serialization;
using LlmServer.OpenAi;

namespace LlmServer.Batches;

/// <summary>Source-generated serialization of the Files and Batch API wire types.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(FileObject))]
[JsonSerializable(typeof(FileList))]
[JsonSerializable(typeof(FileDeleted))]
[JsonSerializable(typeof(CreateBatchRequest))]
[JsonSerializable(typeof(BatchObject))]
[JsonSerializable(typeof(BatchList))]
[JsonSerializable(typeof(BatchErrors))]
[JsonSerializable(typeof(BatchInputLine))]
[JsonSerializable(typeof(BatchOutputLine))]
[JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class BatchJsonContext : JsonSerializerContext;

internal static class BatchJson
{
    public static readonly BatchJsonContext Context = new(OpenAiJson.CreateOptions());
}

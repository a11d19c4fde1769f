using System.Text.Json;
using System.Text.Json.Serialization;

namespace LlmServer.Batches;

public sealed record FileObject(string Id, string Object, long Bytes, long CreatedAt, string Filename, string Purpose, string Status);

public sealed record FileList(string Object, IReadOnlyList<FileObject> Data);

public sealed record FileDeleted(string Id, string Object, bool Deleted);

public sealed class CreateBatchRequest
{
    public string? InputFileId { get; set; }

    public string? Endpoint { get; set; }

    public string? CompletionWindow { get; set; }

    public Dictionary<string, string>? Metadata { get; set; }
}

public sealed record BatchObject(
    string Id,
    string Object,
    string Endpoint,
    BatchErrors? Errors,
    string InputFileId,
    string CompletionWindow,
    string Status,
    string? OutputFileId,
    string? ErrorFileId,
    long CreatedAt,
    long? InProgressAt,
    long ExpiresAt,
    long? FinalizingAt,
    long? CompletedAt,
    long? FailedAt,
    long? ExpiredAt,
    long? CancellingAt,
    long? CancelledAt,
    BatchRequestCounts RequestCounts,
    IReadOnlyDictionary<string, string>? Metadata);

public sealed record BatchErrors(string Object, IReadOnlyList<BatchError> Data);

public sealed record BatchError(string Code, string Message, string? Param, int? Line);

public sealed record BatchRequestCounts(int Total, int Completed, int Failed);

public sealed record BatchList(
    string Object,
    IReadOnlyList<BatchObject> Data,
    [property: JsonPropertyName("first_id")] string? FirstId,
    [property: JsonPropertyName("last_id")] string? LastId,
    bool HasMore);

/// <summary>One line of an input file, as OpenAI defines it.</summary>
public sealed class BatchInputLine
{
    public string? CustomId { get; set; }

    public string? Method { get; set; }

    public string? Url { get; set; }

    public JsonElement? Body { get; set; }
}

/// <summary>One line of an output or error file.</summary>
public sealed record BatchOutputLine(string Id, string CustomId, BatchLineResponse? Response, BatchLineError? Error);

public sealed record BatchLineResponse(int StatusCode, string RequestId, JsonElement Body);

public sealed record BatchLineError(string Code, string Message);

using System.Text.Json;
using System.Text.Json.Serialization;

namespace LlmServer.Sessions;

/// <summary>The REST mirror's JSON, source-generated: camelCase, as the hub sends the same types.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(CreateSessionRequest))]
[JsonSerializable(typeof(UpdateSessionRequest))]
[JsonSerializable(typeof(SendMessageRequest))]
[JsonSerializable(typeof(SessionInfo))]
[JsonSerializable(typeof(SessionInfo[]))]
[JsonSerializable(typeof(SessionDetail))]
[JsonSerializable(typeof(ChatStreamEvent))]
[JsonSerializable(typeof(JsonDocument))]
internal sealed partial class SessionJsonContext : JsonSerializerContext;

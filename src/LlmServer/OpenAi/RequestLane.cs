using LlmServer.Engine.Generation;

namespace LlmServer.OpenAi;

/// <summary>
/// The scheduler lane of a request the endpoints serve: interactive for callers, batch for the lines the Batch API
/// runs through the same endpoints.
/// </summary>
internal static class RequestLane
{
    private static readonly object Key = new();

    public static RequestPriority Of(HttpContext context) =>
        context.Items.TryGetValue(Key, out var lane) && lane is RequestPriority priority ? priority : RequestPriority.Interactive;

    public static void Set(HttpContext context, RequestPriority priority) => context.Items[Key] = priority;
}

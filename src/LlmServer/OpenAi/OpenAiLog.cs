namespace LlmServer.OpenAi;

internal static partial class OpenAiLog
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Error, Message = "Unhandled error serving {Method} {Path}")]
    public static partial void UnhandledError(ILogger logger, Exception exception, string method, string path);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Generation {RequestId} failed after streaming started: {ErrorCode} {ErrorMessage}")]
    public static partial void StreamFailed(ILogger logger, string requestId, string errorCode, string errorMessage);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Debug, Message = "Refused {Method} {Path}: {StatusCode} {ErrorMessage}")]
    public static partial void Refused(ILogger logger, string method, string path, int statusCode, string errorMessage);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Error, Message = "Generation {RequestId} stream broke with an unexpected error")]
    public static partial void StreamBroke(ILogger logger, Exception exception, string requestId);
}

using System.Runtime.CompilerServices;
using LlmServer.Hosting;
using Microsoft.AspNetCore.SignalR;

namespace LlmServer.Sessions;

/// <summary>
/// Logs each hub call that ends in error once: a refusal (a <see cref="HubException"/>, "code: text": busy, not found,
/// rate limits, the drain, ...) at Information without a stack trace, an unexpected failure of a stream at Error
/// with its exception. The outermost hub filter, so it sees the other filters' refusals too. SignalR logs every
/// exception a hub method or filter throws at Error with its stack: the hub's connection handler gets a
/// <see cref="QuietLoggerFactory"/> that keeps that for the unexpected ones only. An unexpected failure of the call itself stays SignalR's to log.
/// </summary>
internal sealed partial class HubCallLog(ILogger<HubCallLog> logger) : IHubFilter
{
    public async ValueTask<object?> InvokeMethodAsync(HubInvocationContext invocationContext, Func<HubInvocationContext, ValueTask<object?>> next)
    {
        var method = invocationContext.HubMethodName;
        object? result;
        try
        {
            result = await next(invocationContext);
        }
        catch (HubException ex)
        {
            Log(ex, method);
            throw;
        }

        return result is IAsyncEnumerable<ChatStreamEvent> events ? Watch(events, method) : result;
    }

    /// <summary>Registers the filter first (outermost) and the quiet logger factory for the chat hub's dispatcher.</summary>
    public static void Register(IServiceCollection services)
    {
        services.AddSingleton<HubCallLog>();
        services.AddOptions<HubOptions>().Configure(hub => hub.AddFilter<HubCallLog>());
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<HubConnectionHandler<ChatHub>>(
            sp, new QuietLoggerFactory(sp.GetRequiredService<ILoggerFactory>(), (_, exception) => exception is HubException, ownsInner: false)));
    }

    /// <summary>An internal error sent as a hub error is a fault of the server, not a refusal of the call.</summary>
    private static bool IsFault(Exception exception) =>
        exception.InnerException is SessionException { Code: SessionErrorCodes.InternalError };

    private void Log(HubException exception, string method)
    {
        if (IsFault(exception))
        {
            LogFailed(logger, exception.InnerException!, method);
        }
        else
        {
            LogRefused(logger, method, exception.Message);
        }
    }

    /// <summary>SignalR does not log a stream's failure once it streams: a refusal or fault while subscribing is logged here.</summary>
    private async IAsyncEnumerable<ChatStreamEvent> Watch(IAsyncEnumerable<ChatStreamEvent> source, string method, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await using var items = source.GetAsyncEnumerator(cancellationToken);
        while (true)
        {
            try
            {
                if (!await items.MoveNextAsync())
                {
                    yield break;
                }
            }
            catch (HubException ex)
            {
                Log(ex, method);
                throw;
            }
            catch (Exception ex) when (!(ex is OperationCanceledException && cancellationToken.IsCancellationRequested))
            {
                LogStreamFailed(logger, ex, method);
                throw;
            }

            yield return items.Current;
        }
    }

    [LoggerMessage(EventId = 4130, Level = LogLevel.Information, Message = "Hub call {HubMethod} refused: {Refusal}")]
    private static partial void LogRefused(ILogger logger, string hubMethod, string refusal);

    [LoggerMessage(EventId = 4132, Level = LogLevel.Error, Message = "Hub call {HubMethod} failed.")]
    private static partial void LogFailed(ILogger logger, Exception exception, string hubMethod);

    [LoggerMessage(EventId = 4131, Level = LogLevel.Error, Message = "Hub stream {HubMethod} failed.")]
    private static partial void LogStreamFailed(ILogger logger, Exception exception, string hubMethod);
}

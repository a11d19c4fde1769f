using System.Collections.Immutable;
using LLama.Native;
using Microsoft.Extensions.Logging;

namespace LlmServer.Engine.Hosting;

/// <summary>
/// llama.cpp's log callback is global to the process, so it is set once per process, here (through LLamaSharp's
/// <see cref="NativeLogConfig.llama_log_set(NativeLogConfig.LLamaLogCallback?)"/>, which takes before or after the
/// native library loads). Every engine in the process (tests start several; an embedding model loads beside the
/// generator) attaches its logger while it runs, and each native line goes to the loggers attached then: a line cannot
/// be told apart by engine, and no engine's callback outlives its logger factory.
/// </summary>
internal static partial class NativeLogSink
{
    private static readonly Lazy<bool> Installed = new(Install, LazyThreadSafetyMode.ExecutionAndPublication);
    private static ImmutableArray<ILogger> s_loggers = [];

    /// <summary>Sends llama.cpp's log to <paramref name="loggerFactory"/> until the result is disposed.</summary>
    public static IDisposable Attach(ILoggerFactory loggerFactory)
    {
        _ = Installed.Value;
        var logger = loggerFactory.CreateLogger("LlmServer.Engine.LlamaCpp");
        ImmutableInterlocked.Update(ref s_loggers, static (loggers, added) => loggers.Add(added), logger);
        return new Attachment(logger);
    }

    private static bool Install()
    {
        NativeLogConfig.LLamaLogCallback callback = Forward;
        try
        {
            NativeLogConfig.llama_log_set(callback);
        }
        catch (InvalidOperationException) when (NativeLibraryConfig.LLama.LibraryHasLoaded)
        {
            // The library loaded (another engine, on another thread) between llama_log_set's check and its
            // configuring of the load: now loaded, the callback goes to llama.cpp directly.
            NativeLogConfig.llama_log_set(callback);
        }

        return true;
    }

    private static void Forward(LLamaLogLevel level, string message)
    {
        var text = message.TrimEnd();
        foreach (var logger in s_loggers)
        {
            LogNative(logger, NativeLevel(level), text);
        }
    }

    /// <summary>llama.cpp is chatty: its information and warnings (tokenizer quirks, tensor listings) are debug detail here.</summary>
    private static LogLevel NativeLevel(LLamaLogLevel level) => level switch
    {
        LLamaLogLevel.Error => LogLevel.Error,
        LLamaLogLevel.Warning => LogLevel.Debug,
        _ => LogLevel.Trace,
    };

    [LoggerMessage(EventId = 1001, Message = "{Message}")]
    private static partial void LogNative(ILogger logger, LogLevel level, string message);

    private sealed class Attachment(ILogger logger) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                ImmutableInterlocked.Update(ref s_loggers, static (loggers, removed) => loggers.Remove(removed), logger);
            }
        }
    }
}

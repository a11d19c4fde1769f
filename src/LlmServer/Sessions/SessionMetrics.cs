using System.Diagnostics.Metrics;

namespace LlmServer.Sessions;

/// <summary>The sessions' meter (<c>LlmServer.Sessions</c>), scraped at <c>/metrics</c> with the engine's.</summary>
internal sealed class SessionMetrics : IDisposable
{
    public const string MeterName = "LlmServer.Sessions";

    private readonly Meter _meter;
    private readonly Counter<long> _windowSlides;
    private readonly Counter<long> _interrupted;

    public SessionMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        _windowSlides = _meter.CreateCounter<long>(
            "llmserver.session_window_slides", description: "Turns whose context window dropped older messages than the previous turn's.");
        _interrupted = _meter.CreateCounter<long>(
            "llmserver.session_answers_interrupted", description: "Answers found unfinished at start (the server had stopped mid-answer).");
    }

    public void WindowSlid() => _windowSlides.Add(1);

    public void AnswersInterrupted(int count) => _interrupted.Add(count);

    public void Dispose() => _meter.Dispose();
}

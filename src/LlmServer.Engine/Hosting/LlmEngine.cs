using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.Hosting;

namespace LlmServer.Engine.Hosting;

/// <summary>Loads the model in the background when the host starts and serves <see cref="ITextGenerator"/>.</summary>
internal sealed class LlmEngine : ITextGenerator, IHostedService, IDisposable
{
    public EngineState State => EngineState.Loading;

    public ModelInfo? Model => null;

    public SchedulerStatus GetStatus() => new(0, 0, 0, 0, 0, 0, false, null, 0);

    public string ApplyChatTemplate(IReadOnlyList<ChatTurn> messages, bool addAssistantPrompt = true) => throw new NotImplementedException();

    public IReadOnlyList<int> Tokenize(string text, bool addSpecial = false, bool parseSpecial = false) => throw new NotImplementedException();

    public string Detokenize(IEnumerable<int> tokens) => throw new NotImplementedException();

    public GenerationStream Submit(GenerationRequest request, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    public void EvictSession(string sessionKey) => throw new NotImplementedException();

    public Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
    }
}

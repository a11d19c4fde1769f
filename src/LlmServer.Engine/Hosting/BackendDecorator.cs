using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Hosting;

/// <summary>
/// Wraps the backend the engine creates (registered as a service): a seam for measuring the serving path with a
/// decode of known cost, and for instrumenting the backend.
/// </summary>
internal sealed class BackendDecorator(Func<IInferenceBackend, IInferenceBackend> wrap)
{
    public IInferenceBackend Wrap(IInferenceBackend backend) => wrap(backend);
}

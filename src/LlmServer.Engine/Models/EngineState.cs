namespace LlmServer.Engine.Models;

public enum EngineState
{
    /// <summary>The model is loading; nothing is admitted yet.</summary>
    Loading,

    /// <summary>Serving.</summary>
    Ready,

    /// <summary>Shutting down: running generations finish, new ones are refused.</summary>
    Draining,

    /// <summary>The model failed to load or the scheduler loop died.</summary>
    Faulted,

    /// <summary>Stopped.</summary>
    Stopped,
}

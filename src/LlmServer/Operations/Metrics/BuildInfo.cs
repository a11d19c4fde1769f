using System.Reflection;

namespace LlmServer.Operations.Metrics;

/// <summary>The server's version as built (the informational version, with the commit when the build stamps one).</summary>
internal static class BuildInfo
{
    public static string Version { get; } =
        typeof(BuildInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(BuildInfo).Assembly.GetName().Version?.ToString()
        ?? "unknown";
}

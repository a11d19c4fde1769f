using LlmServer.Engine.Generation;
using LlmServer.Operations;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Infrastructure;

/// <summary>
/// A test hook in front of the server's engine: a chat request whose last message is a user's <c>say:TEXT</c> gets
/// a grammar that lets the model write exactly TEXT, so a tiny model writes crafted output through the real engine,
/// token by token. Other requests pass as they are. A test may script the output from the user's message otherwise.
/// </summary>
internal sealed class ScriptedOutput(ITextGenerator inner, Func<string, string?> script) : DelegatingTextGenerator(inner)
{
    public const string Prefix = "say:";

    public static void Install(IServiceCollection services) => Install(services, Said);

    /// <summary>Installs a hook that makes the model write what <paramref name="script"/> gives for the user's last message (null: anything).</summary>
    public static void Install(IServiceCollection services, Func<string, string?> script) =>
        OperationsExtensions.DecorateTextGenerator(services, (_, engine) => new ScriptedOutput(engine, script));

    public override GenerationStream Submit(GenerationRequest request, CancellationToken cancellationToken = default) =>
        base.Submit(Scripted(request), cancellationToken);

    private static string? Said(string message) => message.StartsWith(Prefix, StringComparison.Ordinal) ? message[Prefix.Length..] : null;

    private GenerationRequest Scripted(GenerationRequest request) =>
        request.Messages is [.., { Role: "user", Content: { } message }] && script(message) is { } output
            ? request with { Grammar = "root ::= " + GbnfLiteral(output) }
            : request;

    private static string GbnfLiteral(string text) =>
        "\"" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal) + "\"";
}

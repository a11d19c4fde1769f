using LlmServer.Engine.Generation;
using LlmServer.Operations;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Infrastructure;

/// <summary>
/// A test hook in front of the server's engine: a chat request whose last message is a user's <c>say:TEXT</c> gets
/// a grammar that lets the model write exactly TEXT, so a tiny model writes crafted output through the real engine,
/// token by token. Other requests pass as they are.
/// </summary>
internal sealed class ScriptedOutput(ITextGenerator inner) : DelegatingTextGenerator(inner)
{
    public const string Prefix = "say:";

    public static void Install(IServiceCollection services) =>
        OperationsExtensions.DecorateTextGenerator(services, (_, engine) => new ScriptedOutput(engine));

    public override GenerationStream Submit(GenerationRequest request, CancellationToken cancellationToken = default) =>
        base.Submit(Scripted(request), cancellationToken);

    private static GenerationRequest Scripted(GenerationRequest request) =>
        request.Messages is [.., { Role: "user", Content: { } said }] && said.StartsWith(Prefix, StringComparison.Ordinal)
            ? request with { Grammar = "root ::= " + GbnfLiteral(said[Prefix.Length..]) }
            : request;

    private static string GbnfLiteral(string text) =>
        "\"" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal) + "\"";
}

namespace LlmServer.Testing;

/// <summary>
/// The one place tests find the chat-template fixtures (real templates, cases, and llama.cpp's renderings):
/// <c>LLMSERVER_CHAT_TEMPLATES</c> (a folder), then <c>../shared/chat-templates</c> beside the repository.
/// A missing folder fails the test.
/// </summary>
internal static class ChatTemplateFixtures
{
    public const string EnvironmentVariable = "LLMSERVER_CHAT_TEMPLATES";

    public static string Root
    {
        get
        {
            var searched = new List<string>();
            var fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
            if (!string.IsNullOrWhiteSpace(fromEnvironment))
            {
                searched.Add(fromEnvironment);
                if (Directory.Exists(Path.Combine(fromEnvironment, "templates")))
                {
                    return fromEnvironment;
                }
            }

            var beside = Path.GetFullPath(Path.Combine(TestModels.RepositoryRoot, "..", "shared", "chat-templates"));
            searched.Add(beside);
            if (Directory.Exists(Path.Combine(beside, "templates")))
            {
                return beside;
            }

            throw new DirectoryNotFoundException(
                $"Chat-template fixtures not found. Looked in: {string.Join(", ", searched)}. " +
                $"Set {EnvironmentVariable} to a folder holding templates/, cases/ and expected/.");
        }
    }

    public static IReadOnlyList<string> TemplateNames =>
        Directory.GetFiles(Path.Combine(Root, "templates"), "*.jinja")
            .Select(f => Path.GetFileNameWithoutExtension(f)!)
            .Order(StringComparer.Ordinal)
            .ToList();

    public static IReadOnlyList<string> CaseNames =>
        Directory.GetFiles(Path.Combine(Root, "cases"), "*.json")
            .Select(f => Path.GetFileNameWithoutExtension(f)!)
            .Order(StringComparer.Ordinal)
            .ToList();

    public static string TemplateSource(string name) => File.ReadAllText(Path.Combine(Root, "templates", name + ".jinja"));

    public static string CaseJson(string name) => File.ReadAllText(Path.Combine(Root, "cases", name + ".json"));

    /// <summary>The expected prompt, or null where llama.cpp refused the case (then <see cref="ExpectedError"/> holds it).</summary>
    public static string? ExpectedPrompt(string template, string caseName)
    {
        var path = Path.Combine(Root, "expected", template, caseName + ".txt");
        return File.Exists(path) ? File.ReadAllText(path) : null;
    }

    public static string? ExpectedError(string template, string caseName)
    {
        var path = Path.Combine(Root, "expected", template, caseName + ".error");
        return File.Exists(path) ? File.ReadAllText(path) : null;
    }
}

namespace LlmServer.Testing;

/// <summary>
/// The one place tests find model files: <c>LLMSERVER_TEST_MODELS</c> (a folder), then the repository's
/// <c>models/</c>, then <c>../shared/models</c> beside the repository. A missing model fails the test.
/// </summary>
internal static class TestModels
{
    public const string EnvironmentVariable = "LLMSERVER_TEST_MODELS";

    public static string Stories260K => Find("stories260K.gguf");

    public static string TinyRandomLlama2 => Find("llama-2-tiny-random.gguf");

    public static string Phi3Vocab => Find("ggml-vocab-phi-3.gguf");

    public static string Synth110M => Find("synth110m-q4_0.gguf");

    public static string Find(string fileName)
    {
        var searched = new List<string>();
        foreach (var folder in CandidateFolders())
        {
            var candidate = Path.Combine(folder, fileName);
            searched.Add(candidate);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException(
            $"Test model '{fileName}' not found. Looked in: {string.Join(", ", searched)}. " +
            $"Set {EnvironmentVariable} to a folder holding it, or place it in models/ or ../shared/models.");
    }

    /// <summary>The repository root: the nearest folder above the test binaries that holds LlmServer.sln.</summary>
    public static string RepositoryRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "LlmServer.sln")))
                {
                    return dir.FullName;
                }
            }

            throw new DirectoryNotFoundException("LlmServer.sln not found above " + AppContext.BaseDirectory);
        }
    }

    private static IEnumerable<string> CandidateFolders()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            yield return fromEnvironment;
        }

        var root = RepositoryRoot;
        yield return Path.Combine(root, "models");
        yield return Path.GetFullPath(Path.Combine(root, "..", "shared", "models"));
    }
}

namespace LlmServer.Hosting;

/// <summary>Finds the model to serve: <c>Model:Path</c>, else the only (or first) GGUF in <c>models/</c>.</summary>
internal static class ModelPathResolver
{
    public const string HowToProvideAModel =
        "No model to serve. Give one of: --model PATH (or Model__Path=PATH in the environment, or Model:Path in appsettings.json), " +
        "or put a .gguf file in the models/ folder.";

    public static bool TryResolve(IConfiguration configuration, out string error)
    {
        error = string.Empty;
        var configured = configuration["Model:Path"];
        if (!string.IsNullOrWhiteSpace(configured))
        {
            var full = Path.GetFullPath(configured);
            if (!File.Exists(full))
            {
                error = $"Model file '{full}' does not exist. {HowToProvideAModel}";
                return false;
            }

            configuration["Model:Path"] = full;
            return true;
        }

        foreach (var folder in CandidateModelFolders())
        {
            var found = Directory.Exists(folder)
                ? Directory.EnumerateFiles(folder, "*.gguf").Order(StringComparer.Ordinal).FirstOrDefault()
                : null;
            if (found is not null)
            {
                configuration["Model:Path"] = found;
                return true;
            }
        }

        error = HowToProvideAModel;
        return false;
    }

    private static IEnumerable<string> CandidateModelFolders()
    {
        yield return Path.Combine(Directory.GetCurrentDirectory(), "models");
    }
}

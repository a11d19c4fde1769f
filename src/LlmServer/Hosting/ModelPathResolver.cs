using System.Runtime.InteropServices;
using LlmServer.Operations.ModelDownload;

namespace LlmServer.Hosting;

/// <summary>
/// Finds the model to serve: <c>Model:Path</c>; else the first GGUF (by name) in the models folder; else, on first
/// run, downloads <c>Model:Download:Url</c> into that folder.
/// </summary>
internal static class ModelPathResolver
{
    public const string HowToProvideAModel =
        "Provide a model in one of three ways: " +
        "(1) --model PATH (or Model__Path=PATH in the environment, or Model:Path in appsettings.json); " +
        "(2) put a .gguf file in the models/ folder (Model:Download:Directory); " +
        "(3) set Model:Download:Url (and Model:Download:Sha256) to a GGUF file this machine can download.";

    /// <summary>
    /// The one check of the model file. With <paramref name="download"/> false (settings are invalid, so the server
    /// will not start) a model still to be downloaded is left for the next start and counts as no problem.
    /// </summary>
    public static bool TryResolve(IConfiguration configuration, bool download, out string error)
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

        var options = new ModelDownloadOptions();
        configuration.GetSection(ModelDownloadOptions.SectionName).Bind(options);
        var folder = Path.GetFullPath(options.Directory);
        var found = Directory.Exists(folder)
            ? Directory.EnumerateFiles(folder, "*.gguf").Where(f => f.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)).Order(StringComparer.Ordinal).FirstOrDefault()
            : null;
        if (found is not null)
        {
            configuration["Model:Path"] = found;
            return true;
        }

        if (!options.Enabled)
        {
            error = $"No model to serve: Model:Path is not set and {folder} holds no .gguf file. {HowToProvideAModel}";
            return false;
        }

        if (!download)
        {
            return true;
        }

        try
        {
            configuration["Model:Path"] = Download(options);
            return true;
        }
        catch (ModelDownloadException ex)
        {
            error = $"No model to serve: Model:Path is not set, {folder} holds no .gguf file, and the download failed. {ex.Message} {HowToProvideAModel}";
            return false;
        }
        catch (OperationCanceledException)
        {
            error = $"Model download stopped; the next start resumes it. {HowToProvideAModel}";
            return false;
        }
    }

    /// <summary>Runs the download before the host exists, so Ctrl+C and SIGTERM cancel it here (keeping the part file).</summary>
    private static string Download(ModelDownloadOptions options)
    {
        using var stop = new CancellationTokenSource();
        void OnCancelKey(object? sender, ConsoleCancelEventArgs e)
        {
            e.Cancel = true;
            stop.Cancel();
        }

        Console.CancelKeyPress += OnCancelKey;
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            stop.Cancel();
        });
        try
        {
            using var http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(20) }) { Timeout = Timeout.InfiniteTimeSpan };
            http.DefaultRequestHeaders.UserAgent.ParseAdd("LlmServer/1.0");
            var downloader = new ModelDownloader(http, TimeProvider.System, Console.Error, interactive: !Console.IsErrorRedirected);
            return Task.Run(() => downloader.DownloadAsync(options, stop.Token)).GetAwaiter().GetResult();
        }
        finally
        {
            Console.CancelKeyPress -= OnCancelKey;
        }
    }
}

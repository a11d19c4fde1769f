using LlmServer.Anthropic;
using LlmServer.Batches;
using LlmServer.Embeddings;
using LlmServer.Engine.Hosting;
using LlmServer.OpenAi;
using LlmServer.Operations;
using LlmServer.Operations.Lifecycle;
using LlmServer.Responses;
using LlmServer.Sessions;
using LlmServer.WebUi;

namespace LlmServer.Hosting;

/// <summary>Builds the web host: configuration, the engine, and every front end.</summary>
internal static class ServerApplication
{
    /// <summary>Command-line shortcuts for the configuration keys people type most.</summary>
    private static readonly Dictionary<string, string> SwitchMappings = new(StringComparer.OrdinalIgnoreCase)
    {
        ["--model"] = "Model:Path",
        ["-m"] = "Model:Path",
        ["--slots"] = "Scheduler:Slots",
        ["--ctx-size"] = "Scheduler:ContextSize",
    };

    /// <summary>
    /// Builds and runs the server until it stops: 0 after a clean stop, <see cref="StartupProblems.ExitCode"/> when it
    /// cannot start (invalid settings, no model, a port in use), said in one message without a stack trace.
    /// </summary>
    public static async Task<int> RunAsync(string[] args)
    {
        WebApplication app;
        try
        {
            app = Build(args);
        }
        catch (ServerCannotStartException ex)
        {
            return StartupProblems.Report(ex.Message);
        }

        try
        {
            await app.RunAsync();
        }
        catch (Exception ex) when (StartupProblems.IsAddressInUse(ex))
        {
            return StartupProblems.Report(StartupProblems.DescribeAddressInUse(ex));
        }
        catch (InvalidOperationException ex) when (StartupProblems.IsUnreadableSetting(ex))
        {
            // An options section read only once the host starts.
            return StartupProblems.Report(StartupProblems.DescribeInvalidSettings([ex.Message]));
        }

        return 0;
    }

    /// <summary>
    /// Returns the app; throws <see cref="ServerCannotStartException"/>, saying why, when it cannot start (no model,
    /// invalid settings). <paramref name="configureServices"/> runs last, so a host that embeds the server (the benchmarks'
    /// fake-decode server) can add or replace services.
    /// </summary>
    public static WebApplication Build(string[] args, Action<IServiceCollection>? configureServices = null)
    {
        try
        {
            return BuildApp(args, configureServices);
        }
        catch (InvalidOperationException ex) when (StartupProblems.IsUnreadableSetting(ex))
        {
            // A section read while the services are registered (the model's download, the keys).
            throw new ServerCannotStartException(StartupProblems.DescribeInvalidSettings([ex.Message]));
        }
    }

    private static WebApplication BuildApp(string[] args, Action<IServiceCollection>? configureServices)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Configuration.AddCommandLine(args, SwitchMappings);

        builder.Services.AddLlmServerEngine(builder.Configuration);

        // Before the other hub filters: the outermost one logs their refusals too.
        HubCallLog.Register(builder.Services);
        builder.AddOperations();
        builder.Services.AddOpenAiApi(builder.Configuration);
        builder.Services.AddAnthropicApi();
        builder.Services.AddResponsesApi(builder.Configuration);
        builder.Services.AddEmbeddingsApi();
        builder.Services.AddBatchApi(builder.Configuration);
        builder.Services.AddSessions(builder.Configuration);

        // In place of ConsoleLifetime: a signal drains while the host keeps listening; the drain's end stops it.
        builder.Services.AddSingleton<IHostLifetime, DrainingLifetime>();
        StartupProblems.QuietenAddressInUse(builder.Services);
        configureServices?.Invoke(builder.Services);

        // Every setting first, then the model: a server that cannot start downloads nothing, and a missing model
        // file joins the one report of its problems.
        var invalid = StartupProblems.InvalidSettings(builder.Services);
        if (!ModelPathResolver.TryResolve(builder.Configuration, download: invalid.Count == 0, out var modelProblem))
        {
            if (invalid.Count == 0)
            {
                throw new ServerCannotStartException(modelProblem);
            }

            invalid = [.. invalid, modelProblem];
        }

        if (invalid.Count > 0)
        {
            throw new ServerCannotStartException(StartupProblems.DescribeInvalidSettings(invalid));
        }

        var app = builder.Build();
        app.UseRoutingWithHeadAsGet();
        app.UseOperations();
        app.MapOpenAiApi();
        app.MapAnthropicApi();
        app.MapResponsesApi();
        app.MapEmbeddingsApi();
        app.MapBatchApi();
        app.MapSessions();
        app.MapWebUi();
        return app;
    }
}

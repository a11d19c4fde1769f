using LlmServer.Engine.Embeddings;
using LlmServer.Engine.Generation;
using LlmServer.Engine.KvCache;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace LlmServer.Engine.Hosting;

public static class EngineServiceCollectionExtensions
{
    /// <summary>
    /// Registers the engine: the model, the scheduler and <see cref="ITextGenerator"/>. Options are bound from
    /// the <c>Model</c> and <c>Scheduler</c> sections of <paramref name="configuration"/> and validated at start.
    /// The model loads in the background when the host starts; <see cref="ITextGenerator.State"/> says when it serves.
    /// </summary>
    public static IServiceCollection AddLlmServerEngine(this IServiceCollection services, IConfiguration configuration, Action<ModelOptions>? configureModel = null)
    {
        services.AddOptions<ModelOptions>().Bind(configuration.GetSection(ModelOptions.SectionName)).ValidateOnStart();
        services.AddOptions<SchedulerOptions>().Bind(configuration.GetSection(SchedulerOptions.SectionName)).ValidateOnStart();
        services.AddOptions<KvCacheOptions>().Bind(configuration.GetSection(KvCacheOptions.SectionName)).ValidateOnStart();
        if (configureModel is not null)
        {
            services.Configure(configureModel);
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ModelOptions>, ModelOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SchedulerOptions>, SchedulerOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KvCacheOptions>, KvCacheOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<LlmEngine>();
        services.TryAddSingleton<ITextGenerator>(sp => sp.GetRequiredService<LlmEngine>());
        services.AddHostedService(sp => sp.GetRequiredService<LlmEngine>());

        services.AddOptions<EmbeddingOptions>().Bind(configuration.GetSection(EmbeddingOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<EmbeddingOptions>, EmbeddingOptionsValidator>());
        services.TryAddSingleton<EmbeddingWorker>();
        services.TryAddSingleton<ITextEmbedder>(sp => sp.GetRequiredService<EmbeddingWorker>());
        services.AddHostedService(sp => sp.GetRequiredService<EmbeddingWorker>());
        return services;
    }
}

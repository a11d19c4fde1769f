using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.Models;
using LlmServer.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace LlmServer.Extensions.Tests;

/// <summary>An in-process host has no server to check its model file: waiting for the engine says what went wrong.</summary>
public sealed class ModelLoadFailureTests
{
    [Fact]
    public async Task Waiting_for_an_engine_whose_model_file_is_missing_names_the_file()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"no-such-model-{Guid.NewGuid():N}.gguf");
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration["Model:Path"] = missing;
        builder.Services.AddLlmServerEngine(builder.Configuration);

        using var host = builder.Build();
        await host.StartAsync();
        var generator = host.Services.GetRequiredService<ITextGenerator>();

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => generator.WaitUntilReadyAsync());
        Assert.Equal(EngineState.Faulted, generator.State);
        Assert.Contains($"Model:Path '{missing}' does not exist", refused.Message, StringComparison.Ordinal);
        Assert.IsType<FileNotFoundException>(refused.InnerException);
        await host.StopAsync();
    }
}

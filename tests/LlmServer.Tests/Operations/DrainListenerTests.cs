using System.Net;
using System.Text;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Operations;

/// <summary>
/// The web server keeps listening while the engine drains: a client that connects during the drain gets the API's
/// 503, not a refused connection (the drain runs before the host stops any hosted service, Kestrel included).
/// </summary>
public sealed class DrainListenerTests
{
    [Fact]
    public async Task A_client_that_connects_during_the_drain_gets_503_in_the_apis_error_shape()
    {
        var gate = new DrainGate();
        await using var server = await TestServer.StartAsync(configureServices: gate.Wrap);
        var stopping = server.App.StopAsync();
        try
        {
            // Only a hang guard: the drain is held open by the gate until the checks are done.
            using var hang = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            await gate.Entered.Task.WaitAsync(hang.Token);

            // A new client: a new connection, accepted only if the server still listens.
            using var client = new HttpClient { BaseAddress = server.BaseAddress };
            using var chat = await client.PostAsync(
                new Uri("/v1/chat/completions", UriKind.Relative),
                new StringContent("""{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4}""", Encoding.UTF8, "application/json"),
                hang.Token);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, chat.StatusCode);
            Assert.NotNull(chat.Headers.RetryAfter);
            using var body = JsonDocument.Parse(await chat.Content.ReadAsStringAsync(hang.Token));
            Assert.Equal("server_shutting_down", body.RootElement.GetProperty("error").GetProperty("code").GetString());

            using var fresh = new HttpClient { BaseAddress = server.BaseAddress };
            using var ready = await fresh.GetAsync(new Uri("/health/ready", UriKind.Relative), hang.Token);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        }
        finally
        {
            gate.Release();
            await stopping;
        }
    }

    /// <summary>Holds the server's drain until the test releases it.</summary>
    private sealed class DrainGate
    {
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes when the host has begun the drain.</summary>
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Puts the gate in front of the server's text generator.</summary>
        public void Wrap(IServiceCollection services)
        {
            var registration = services.Last(d => d.ServiceType == typeof(ITextGenerator) && !d.IsKeyedService);
            services.Remove(registration);
            services.AddSingleton<ITextGenerator>(sp => new GatedGenerator((ITextGenerator)registration.ImplementationFactory!(sp), this));
        }

        public void Release() => _release.TrySetResult();

        public Task WaitAsync(CancellationToken cancellationToken)
        {
            Entered.TrySetResult();
            return _release.Task.WaitAsync(cancellationToken);
        }
    }

    private sealed class GatedGenerator(ITextGenerator inner, DrainGate gate) : DelegatingTextGenerator(inner)
    {
        public override async Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
        {
            await gate.WaitAsync(cancellationToken);
            await base.DrainAsync(timeout, cancellationToken);
        }
    }
}

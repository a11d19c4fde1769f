using System.Text.Json;
using LlmServer.Anthropic;
using LlmServer.Engine.Generation;
using LlmServer.Errors;
using LlmServer.OpenAi;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmServer.Tests.OpenAi;

/// <summary>The error middleware on its own: failures that no real request can provoke on purpose.</summary>
public sealed class OpenAiErrorMiddlewareTests
{
    /// <summary>The OpenAI API as the only front end: these paths are all its own.</summary>
    private static readonly RefusalWriters Refusals = new([new RefusalRoute(PathString.Empty, new OpenAiRefusalWriter())]);

    [Fact]
    public async Task Unexpected_exception_on_an_openai_path_is_a_500_server_error()
    {
        var middleware = new OpenAiErrorMiddleware(_ => throw new InvalidOperationException("boom"), NullLogger<OpenAiErrorMiddleware>.Instance, Refusals);
        var context = NewContext("/v1/chat/completions");

        await middleware.InvokeAsync(context);

        Assert.Equal(StatusCodes.Status500InternalServerError, context.Response.StatusCode);
        var error = ReadBody(context).GetProperty("error");
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.DoesNotContain("boom", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Overloaded_engine_is_a_429_with_retry_after()
    {
        var middleware = new OpenAiErrorMiddleware(
            _ => throw new GenerationException(GenerationErrorCode.Overloaded, "Queue full.") { BackOff = TimeSpan.FromSeconds(2.5) },
            NullLogger<OpenAiErrorMiddleware>.Instance, Refusals);
        var context = NewContext("/v1/completions");

        await middleware.InvokeAsync(context);

        Assert.Equal(StatusCodes.Status429TooManyRequests, context.Response.StatusCode);
        Assert.Equal("3", context.Response.Headers.RetryAfter.ToString());
        Assert.Equal("rate_limit_error", ReadBody(context).GetProperty("error").GetProperty("type").GetString());
    }

    [Theory]
    [InlineData(StatusCodes.Status422UnprocessableEntity, "unprocessable_entity_error")]
    [InlineData(StatusCodes.Status402PaymentRequired, "billing_error")]
    [InlineData(StatusCodes.Status504GatewayTimeout, "timeout_error")]
    public async Task A_refusal_with_a_status_of_its_own_keeps_its_status_and_type(int status, string type)
    {
        var middleware = new OpenAiErrorMiddleware(
            _ => throw new OpenAiException(status, type, "Not this.", "input", "its_code"), NullLogger<OpenAiErrorMiddleware>.Instance, Refusals);
        var context = NewContext("/v1/embeddings");

        await middleware.InvokeAsync(context);

        Assert.Equal(status, context.Response.StatusCode);
        var error = ReadBody(context).GetProperty("error");
        Assert.Equal(type, error.GetProperty("type").GetString());
        Assert.Equal("input", error.GetProperty("param").GetString());
        Assert.Equal("its_code", error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task On_the_anthropic_path_a_refusal_keeps_its_status_in_anthropics_shape()
    {
        var refusals = new RefusalWriters([new RefusalRoute(PathString.Empty, new OpenAiRefusalWriter()), new RefusalRoute(AnthropicErrors.Path, new AnthropicRefusalWriter())]);
        var middleware = new OpenAiErrorMiddleware(
            _ => throw new OpenAiException(StatusCodes.Status422UnprocessableEntity, "unprocessable_entity_error", "Not this."), NullLogger<OpenAiErrorMiddleware>.Instance, refusals);
        var context = NewContext(AnthropicErrors.Path);

        await middleware.InvokeAsync(context);

        Assert.Equal(StatusCodes.Status422UnprocessableEntity, context.Response.StatusCode);
        Assert.Equal("invalid_request_error", ReadBody(context).GetProperty("error").GetProperty("type").GetString());
    }

    /// <summary>
    /// Outside the API the middleware answers only what nothing else did: routing's own 405 gets the error shape, a
    /// body-less 405 an endpoint or another component set is left as it is.
    /// </summary>
    [Theory]
    [InlineData("405 HTTP Method Not Supported", true)]
    [InlineData("A component's own endpoint", false)]
    public async Task Outside_the_api_only_routings_own_405_gets_the_error_shape(string endpointName, bool rewritten)
    {
        var middleware = new OpenAiErrorMiddleware(
            context =>
            {
                context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
                context.Response.Headers.Allow = "GET";
                return Task.CompletedTask;
            },
            NullLogger<OpenAiErrorMiddleware>.Instance,
            Refusals);
        var context = NewContext("/hubs/chat");
        context.SetEndpoint(new Endpoint(null, EndpointMetadataCollection.Empty, endpointName));

        await middleware.InvokeAsync(context);

        Assert.Equal(StatusCodes.Status405MethodNotAllowed, context.Response.StatusCode);
        if (rewritten)
        {
            Assert.Equal("method_not_allowed", ReadBody(context).GetProperty("error").GetProperty("code").GetString());
        }
        else
        {
            Assert.Null(context.Response.ContentType);
            Assert.Equal(0, context.Response.Body.Length);
        }
    }

    [Fact]
    public async Task Other_paths_are_left_alone()
    {
        var middleware = new OpenAiErrorMiddleware(_ => throw new InvalidOperationException("boom"), NullLogger<OpenAiErrorMiddleware>.Instance, Refusals);
        await Assert.ThrowsAsync<InvalidOperationException>(() => middleware.InvokeAsync(NewContext("/health")));
    }

    private static DefaultHttpContext NewContext(string path)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.Path = path;
        context.Response.Body = new MemoryStream();
        return context;
    }

    private static JsonElement ReadBody(DefaultHttpContext context)
    {
        context.Response.Body.Position = 0;
        return JsonDocument.Parse(context.Response.Body).RootElement.Clone();
    }
}

using System.Net;
using System.Text;
using System.Text.Json;
using LlmServer.Anthropic;
using LlmServer.Engine.Generation;
using LlmServer.Errors;
using LlmServer.OpenAi;
using LlmServer.Operations;
using LlmServer.Operations.Auth;
using LlmServer.Operations.Lifecycle;
using LlmServer.Responses;
using LlmServer.Sessions;
using LlmServer.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.Operations;

/// <summary>
/// The operations layer (keys, rate limits, body size, draining) runs in front of every front end; its refusals come
/// out in the shape of the API that owns the path: Anthropic's under <c>/v1/messages</c>, the sessions' under
/// <c>/api/sessions</c>, OpenAI's elsewhere. And engine refusals name the field as the client's API does.
/// </summary>
public sealed class RefusalShapeTests
{
    private const string MessagesBody = """{"max_tokens":2,"messages":[{"role":"user","content":"Hi"}]}""";
    private const string ChatBody = """{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2}""";
    private const string SessionBody = """{"title":"A chat"}""";

    [Fact]
    public async Task A_missing_or_wrong_key_gets_401_in_the_shape_of_the_paths_API()
    {
        await using var server = await TestServer.StartAsync(extraArgs: [$"--Auth:ApiKeys:0={AuthTests.KeyA}"]);

        using (var missing = await server.Client.PostAsync(new Uri("/v1/messages", UriKind.Relative), Json(MessagesBody)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
            Assert.Equal("Bearer", missing.Headers.WwwAuthenticate.Single().Scheme);
            AssertAnthropicError(await BodyAsync(missing), "authentication_error");
        }

        using (var wrong = await SendAsync(server, "/v1/messages", MessagesBody, key: "not-a-key-at-all-123456"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
            var error = AssertAnthropicError(await BodyAsync(wrong), "authentication_error");
            Assert.Contains("Incorrect API key", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        foreach (var path in new[] { ChatPath, "/v1/responses" })
        {
            using var openAi = await SendAsync(server, path, ChatBody, key: "not-a-key-at-all-123456");
            Assert.Equal(HttpStatusCode.Unauthorized, openAi.StatusCode);
            AssertOpenAiError(await BodyAsync(openAi), "invalid_request_error", expectedCode: "invalid_api_key");
        }

        using var session = await SendAsync(server, "/api/sessions", SessionBody, key: null);
        Assert.Equal(HttpStatusCode.Unauthorized, session.StatusCode);
        AssertOpenAiError(await BodyAsync(session), "invalid_request_error", expectedCode: "invalid_api_key");

        // With the key, the Anthropic path serves.
        using var served = await SendAsync(server, "/v1/messages", MessagesBody, key: AuthTests.KeyA);
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
    }

    [Fact]
    public async Task Beyond_the_rate_limit_each_path_gets_its_APIs_429_with_Retry_After()
    {
        await using var server = await TestServer.StartAsync(extraArgs: ["--Limits:RequestsPerMinute=1"]);
        using (var first = await server.Client.GetAsync(new Uri("/props", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        using (var messages = await SendAsync(server, "/v1/messages", MessagesBody, key: null))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, messages.StatusCode);
            Assert.NotNull(messages.Headers.RetryAfter?.Delta);
            AssertAnthropicError(await BodyAsync(messages), "rate_limit_error");
        }

        using (var chat = await SendAsync(server, ChatPath, ChatBody, key: null))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, chat.StatusCode);
            Assert.NotNull(chat.Headers.RetryAfter?.Delta);
            AssertOpenAiError(await BodyAsync(chat), "rate_limit_error", expectedCode: "rate_limit_exceeded");
        }

        using var session = await SendAsync(server, "/api/sessions", SessionBody, key: null);
        Assert.Equal(HttpStatusCode.TooManyRequests, session.StatusCode);
        Assert.NotNull(session.Headers.RetryAfter?.Delta);
        AssertOpenAiError(await BodyAsync(session), "rate_limit_error", expectedCode: "rate_limit_exceeded");
    }

    [Fact]
    public async Task A_body_over_the_limit_gets_413_in_the_shape_of_the_paths_API()
    {
        await using var server = await TestServer.StartAsync(extraArgs: ["--Server:MaxRequestBodyBytes=2048"]);
        var text = new string('a', 4096);

        using (var messages = await SendAsync(server, "/v1/messages", $$"""{"max_tokens":2,"messages":[{"role":"user","content":"{{text}}"}]}""", key: null))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, messages.StatusCode);
            AssertAnthropicError(await BodyAsync(messages), "request_too_large");
        }

        using (var chat = await SendAsync(server, ChatPath, $$"""{"messages":[{"role":"user","content":"{{text}}"}]}""", key: null))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, chat.StatusCode);
            AssertOpenAiError(await BodyAsync(chat), "invalid_request_error", expectedCode: "request_too_large");
        }

        using var session = await SendAsync(server, "/api/sessions", $$"""{"title":"{{text}}"}""", key: null);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, session.StatusCode);
        AssertOpenAiError(await BodyAsync(session), "invalid_request_error", expectedCode: "request_too_large");
    }

    [Fact]
    public async Task While_draining_each_path_gets_its_APIs_unavailable_answer_with_Retry_After()
    {
        await using var server = await TestServer.StartAsync(extraArgs: ["--Server:DrainSeconds=30"]);
        var services = server.Services;
        await services.GetRequiredService<GracefulShutdown>().BeginDrain();
        var draining = new DrainingMiddleware(
            _ => throw new InvalidOperationException("A draining server must not pass requests on."),
            services.GetRequiredService<GracefulShutdown>(),
            services.GetRequiredService<ProtectedPaths>(),
            services.GetRequiredService<IOptions<ServerOptions>>());

        var messages = await InvokeAsync(draining, services, "/v1/messages");
        Assert.Equal(AnthropicErrors.StatusOverloaded, messages.Response.StatusCode);
        Assert.Equal("30", messages.Response.Headers.RetryAfter.ToString());
        AssertAnthropicError(messages.Body, "overloaded_error");

        var chat = await InvokeAsync(draining, services, ChatPath);
        Assert.Equal(StatusCodes.Status503ServiceUnavailable, chat.Response.StatusCode);
        Assert.Equal("30", chat.Response.Headers.RetryAfter.ToString());
        AssertOpenAiError(chat.Body, "server_error", expectedCode: "server_shutting_down");

        var session = await InvokeAsync(draining, services, "/api/sessions");
        Assert.Equal(StatusCodes.Status503ServiceUnavailable, session.Response.StatusCode);
        AssertOpenAiError(session.Body, "unavailable_error", expectedCode: "server_shutting_down");
    }

    [Fact]
    public async Task Engine_refusals_name_the_field_as_each_API_names_it()
    {
        await using var server = await TestServer.StartAsync(extraArgs: ["--Scheduler:Slots=2", "--Limits:MaxPromptTokens=64"]);
        var longText = string.Join(' ', Enumerable.Repeat("Once upon a time there was a little girl who liked to play.", 20));

        // More choices than slots: the engine refuses Choices, which OpenAI calls n.
        var (status, body, _) = await PostAsync(server.Client, ChatPath, """{"messages":[{"role":"user","content":"Hi"}],"n":3,"max_tokens":2}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(body, "invalid_request_error", "n");

        (status, body, _) = await PostAsync(server.Client, "/v1/completions", $$"""{"prompt":"{{longText}}","max_tokens":2}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(body, "invalid_request_error", "prompt", "context_length_exceeded");

        (status, body, _) = await PostAsync(server.Client, ChatPath, $$"""{"messages":[{"role":"user","content":"{{longText}}"}],"max_tokens":2}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(body, "invalid_request_error", "messages", "context_length_exceeded");

        // The Responses API's prompt is its input.
        (status, body, _) = await PostAsync(server.Client, "/v1/responses", $$"""{"input":"{{longText}}","max_output_tokens":2}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(body, "invalid_request_error", "input", "context_length_exceeded");

        (status, body, _) = await PostAsync(server.Client, "/v1/responses", """{"input":"Hi","max_output_tokens":0}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(body, "invalid_request_error", "max_output_tokens");

        // Anthropic has no param field: the field leads the message, as Anthropic's own errors have it.
        (status, body, _) = await PostAsync(server.Client, "/v1/messages", $$"""{"max_tokens":2,"messages":[{"role":"user","content":"{{longText}}"}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.StartsWith("messages: ", AssertAnthropicError(body, "invalid_request_error").GetProperty("message").GetString(), StringComparison.Ordinal);

        (status, body, _) = await PostAsync(server.Client, "/v1/messages", """{"max_tokens":0,"messages":[{"role":"user","content":"Hi"}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("'max_tokens'", AssertAnthropicError(body, "invalid_request_error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(GenerationField.MaxTokens, null, "max_tokens", "max_output_tokens", "max_tokens", "settings.maxTokens")]
    [InlineData(GenerationField.Choices, null, "n", null, null, null)]
    [InlineData(GenerationField.Messages, null, "messages", "input", "messages", "text")]
    [InlineData(GenerationField.Stop, null, "stop", null, "stop_sequences", null)]
    [InlineData(GenerationField.ToolParameters, 1, "tools[1].function.parameters", "tools[1].parameters", "tools[1].input_schema", null)]
    [InlineData(GenerationField.Input, 2, "input[2]", "input[2]", "input[2]", null)]
    public void Each_front_end_names_the_engines_fields_in_one_place(GenerationField field, int? index, string openAi, string? responses, string? anthropic, string? sessions)
    {
        var refusal = new GenerationException(GenerationErrorCode.InvalidRequest, "Refused.", field) { FieldIndex = index };

        Assert.Equal(openAi, OpenAiErrors.FromGeneration(refusal).Param);
        Assert.Equal(responses, OpenAiErrors.FromGeneration(refusal, ResponsesFieldNames.Names).Param);
        Assert.Equal(anthropic, AnthropicFieldNames.Names.Of(refusal));
        Assert.Equal(sessions, SessionErrors.FromEngine(refusal).Parameter);
    }

    private static async Task<HttpResponseMessage> SendAsync(TestServer server, string path, string json, string? key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative)) { Content = Json(json) };
        if (key is not null)
        {
            request.Headers.Add("x-api-key", key);
        }

        return await server.Client.SendAsync(request);
    }

    private static async Task<JsonElement> BodyAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.Clone();
    }

    private static async Task<(HttpResponse Response, JsonElement Body)> InvokeAsync(DrainingMiddleware middleware, IServiceProvider services, string path)
    {
        var context = new DefaultHttpContext { RequestServices = services };
        context.Request.Method = HttpMethods.Post;
        context.Request.Path = path;
        context.Response.Body = new MemoryStream();
        await middleware.InvokeAsync(context);
        context.Response.Body.Position = 0;
        using var json = await JsonDocument.ParseAsync(context.Response.Body);
        return (context.Response, json.RootElement.Clone());
    }

    private static JsonElement AssertAnthropicError(JsonElement body, string expectedType)
    {
        Assert.Equal("error", body.GetProperty("type").GetString());
        var error = body.GetProperty("error");
        Assert.Equal(expectedType, error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        return error;
    }
}

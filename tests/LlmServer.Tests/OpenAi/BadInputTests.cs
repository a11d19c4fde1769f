using System.Net;
using System.Text;
using System.Text.Json;
using LlmServer.Tests.Infrastructure;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.OpenAi;

/// <summary>A server with a small body limit, so the oversized-body case stays small.</summary>
public sealed class SmallBodyServerFixture : IAsyncLifetime
{
    public const int MaxBodyBytes = 64 * 1024;

    private TestServer? _server;

    public TestServer Server => _server ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() =>
        _server = await TestServer.StartAsync(extraArgs: [$"--Server:MaxRequestBodyBytes={MaxBodyBytes}"]);

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>
/// Every kind of bad input gets its status and the OpenAI error shape, and the server serves a normal request
/// right after each one.
/// </summary>
public sealed class BadInputTests(SmallBodyServerFixture fixture) : IClassFixture<SmallBodyServerFixture>
{
    private const string Hi = """[{"role":"user","content":"Hi"}]""";

    private static readonly string LongPrompt = string.Concat(Enumerable.Repeat("Once upon a time ", 200));

    private readonly HttpClient _client = fixture.Server.Client;

    public static TheoryData<string, string, string, int, string, string?, string?> Cases => new()
    {
        // name, path, body, status, error type, param, code
        { "malformed JSON", ChatPath, """{"messages":[{"role":"user","content":"Hi"}""", 400, "invalid_request_error", null, null },
        { "not JSON at all", ChatPath, "hello", 400, "invalid_request_error", null, null },
        { "empty body", ChatPath, "", 400, "invalid_request_error", null, null },
        { "array body", ChatPath, "[1,2]", 400, "invalid_request_error", null, null },
        { "max_tokens of the wrong type", ChatPath, $$"""{"messages":{{Hi}},"max_tokens":"ten"}""", 400, "invalid_request_error", "max_tokens", null },
        { "temperature of the wrong type", ChatPath, $$"""{"messages":{{Hi}},"temperature":"hot"}""", 400, "invalid_request_error", "temperature", null },
        { "stream of the wrong type", ChatPath, $$"""{"messages":{{Hi}},"stream":"yes"}""", 400, "invalid_request_error", "stream", null },
        { "messages of the wrong type", ChatPath, """{"messages":"Hi"}""", 400, "invalid_request_error", "messages", null },
        { "content of the wrong type", ChatPath, """{"messages":[{"role":"user","content":5}]}""", 400, "invalid_request_error", "messages[0].content", null },
        { "image content part", ChatPath, """{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}""", 400, "invalid_request_error", "messages[0].content", null },
        { "stop of the wrong type", ChatPath, $$"""{"messages":{{Hi}},"stop":42}""", 400, "invalid_request_error", "stop", null },
        { "negative max_tokens", ChatPath, $$"""{"messages":{{Hi}},"max_tokens":-5}""", 400, "invalid_request_error", "max_tokens", null },
        { "zero max_completion_tokens", ChatPath, $$"""{"messages":{{Hi}},"max_completion_tokens":0}""", 400, "invalid_request_error", "max_completion_tokens", null },
        { "huge max_tokens", ChatPath, $$"""{"messages":{{Hi}},"max_tokens":1000000000}""", 400, "invalid_request_error", "max_tokens", null },
        { "max_tokens beyond 32 bits", ChatPath, $$"""{"messages":{{Hi}},"max_tokens":99999999999999}""", 400, "invalid_request_error", "max_tokens", null },
        { "temperature out of range", ChatPath, $$"""{"messages":{{Hi}},"temperature":3.5}""", 400, "invalid_request_error", "temperature", null },
        { "top_p of zero (no token left to sample)", ChatPath, $$"""{"messages":{{Hi}},"top_p":0}""", 400, "invalid_request_error", "top_p", null },
        { "top_p above one", "/v1/completions", """{"prompt":"Hi","top_p":1.5}""", 400, "invalid_request_error", "top_p", null },
        { "n out of range", ChatPath, $$"""{"messages":{{Hi}},"n":5}""", 400, "invalid_request_error", "n", null },
        { "top_logprobs without logprobs", ChatPath, $$"""{"messages":{{Hi}},"top_logprobs":2}""", 400, "invalid_request_error", "top_logprobs", null },
        { "empty messages", ChatPath, """{"messages":[]}""", 400, "invalid_request_error", "messages", null },
        { "missing messages", ChatPath, """{"model":"stories260K"}""", 400, "invalid_request_error", "messages", null },
        { "unknown role", ChatPath, """{"messages":[{"role":"wizard","content":"Hi"}]}""", 400, "invalid_request_error", "messages[0].role", null },
        { "unknown response_format", ChatPath, $$$"""{"messages":{{{Hi}}},"response_format":{"type":"xml"}}""", 400, "invalid_request_error", "response_format.type", null },
        { "unsupported schema", ChatPath, $$$$$"""{"messages":{{{{{Hi}}}}},"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"tuple"}}}}""", 400, "invalid_request_error", "response_format.json_schema.schema", null },
        { "schema that refers to itself", ChatPath, $$$$$"""{"messages":{{{{{Hi}}}}},"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"$ref":"#"}}}}""", 400, "invalid_request_error", "response_format.json_schema.schema", null },
        { "schema with a length above the grammar's counts", ChatPath, $$$$$"""{"messages":{{{{{Hi}}}}},"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"type":"string","minLength":5000}},"required":["a"]}}}}""", 400, "invalid_request_error", "response_format.json_schema.schema", null },
        { "schema with a non-string $ref", ChatPath, $$$$$"""{"messages":{{{{{Hi}}}}},"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"$ref":5}}}}""", 400, "invalid_request_error", "response_format.json_schema.schema", null },
        { "unknown model", ChatPath, $$"""{"model":"gpt-4o","messages":{{Hi}}}""", 404, "invalid_request_error", "model", "model_not_found" },
        { "prompt over the context (chat)", ChatPath, $$"""{"messages":[{"role":"user","content":"{{LongPrompt}}"}]}""", 400, "invalid_request_error", "messages", "context_length_exceeded" },
        { "prompt over the context (completions)", "/v1/completions", $$"""{"prompt":"{{LongPrompt}}"}""", 400, "invalid_request_error", "prompt", "context_length_exceeded" },
        { "missing prompt", "/v1/completions", """{"max_tokens":3}""", 400, "invalid_request_error", "prompt", null },
        { "token-array prompt", "/v1/completions", """{"prompt":[1,2,3]}""", 400, "invalid_request_error", "prompt", null },
        { "completions logprobs out of range", "/v1/completions", """{"prompt":"Hi","logprobs":9}""", 400, "invalid_request_error", "logprobs", null },
        { "tokenize without content", "/tokenize", """{"text":"Hi"}""", 400, "invalid_request_error", "content", null },
        { "detokenize an unknown token", "/detokenize", """{"tokens":[1,100000]}""", 400, "invalid_request_error", "tokens[1]", null },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Bad_input_gets_its_status_and_the_error_shape_then_the_server_serves(
        string name, string path, string body, int status, string type, string? param, string? code)
    {
        using var response = await _client.PostAsync(path, Json(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == (int)response.StatusCode, $"{name}: got {(int)response.StatusCode} {text}");
        AssertJsonContentType(response);
        AssertOpenAiError(JsonDocument.Parse(text).RootElement, type, param, code);
        await AssertServesNormallyAsync();
    }

    [Fact]
    public async Task Unsupported_schema_names_the_place_in_the_schema_and_the_reason()
    {
        var (status, body, _) = await PostAsync(_client, ChatPath, """
            {"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{
              "type":"object","properties":{"tags":{"type":"array","items":{"allOf":[{"type":"string"}]}}}}}}}
            """);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = body.GetProperty("error");
        Assert.Equal("response_format.json_schema.schema", error.GetProperty("param").GetString());
        Assert.Equal(
            "Invalid schema for response_format: 'allOf' at '#/properties/tags/items' is a constraint the JSON grammar cannot enforce, so the schema is refused rather than broken.",
            error.GetProperty("message").GetString());
    }

    [Theory]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"max_tokens":99999999999}""", "max_tokens", "Invalid value for 'max_tokens': 99999999999 is out of range for an integer.")]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"seed":18446744073709551615}""", "seed", "Invalid value for 'seed': 18446744073709551615 is out of range for an integer.")]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"max_tokens":1.5}""", "max_tokens", "Invalid type for 'max_tokens': expected an integer.")]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"max_tokens":1e3}""", "max_tokens", "Invalid type for 'max_tokens': expected an integer.")]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"model":5}""", "model", "Invalid type for 'model': expected a string.")]
    [InlineData("""{"messages":[{"role":5,"content":"Hi"}]}""", "messages[0].role", "Invalid type for 'messages[0].role': expected a string.")]
    [InlineData("""{"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":{}}}]}]}""", "messages[0].tool_calls[0].function.arguments", "Invalid type for 'messages[0].tool_calls[0].function.arguments': expected a string.")]
    [InlineData("""{"messages":[{"role":"user","content":"a\ud800b"}]}""", "messages[0].content", "Invalid value for 'messages[0].content': the string is not valid Unicode text (a lone surrogate escape, or bytes that are not UTF-8).")]
    public async Task A_value_of_the_right_kind_that_cannot_be_read_says_why_not_that_its_type_is_wrong(string body, string param, string message)
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = json.GetProperty("error");
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal(message, error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task A_schema_llama_cpp_could_not_run_is_refused_in_words_about_the_schema()
    {
        var (status, body, _) = await PostAsync(_client, ChatPath, """
            {"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"$ref":"#"}}}}
            """);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = body.GetProperty("error");
        Assert.Equal("response_format.json_schema.schema", error.GetProperty("param").GetString());
        Assert.Equal(
            "Invalid schema for response_format: The schema at '#' refers to '#', which contains it, without an object or array between: a value of it could never end.",
            error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Prompt_over_the_context_names_both_numbers()
    {
        var (status, body, _) = await PostAsync(_client, ChatPath, $$"""{"messages":[{"role":"user","content":"{{LongPrompt}}"}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var message = body.GetProperty("error").GetProperty("message").GetString()!;
        var (models, _, _) = await GetAsync("/v1/models");
        var contextLength = models.GetProperty("data")[0].GetProperty("context_length").GetInt32();
        Assert.Contains(contextLength.ToString(System.Globalization.CultureInfo.InvariantCulture), message, StringComparison.Ordinal);
        var numbers = System.Text.RegularExpressions.Regex.Matches(message, "[0-9]+").Select(m => int.Parse(m.Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Contains(numbers, n => n > contextLength);
    }

    [Fact]
    public async Task Oversized_body_gets_413_with_or_without_a_content_length()
    {
        var big = $$"""{"messages":[{"role":"user","content":"{{new string('a', SmallBodyServerFixture.MaxBodyBytes + 10)}}"}]}""";
        using (var response = await _client.PostAsync(ChatPath, Json(big)))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            AssertOpenAiError(JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement, "invalid_request_error", expectedCode: "request_too_large");
        }

        await AssertServesNormallyAsync();

        // Chunked upload: no Content-Length, so the limit is found while reading.
        var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big)));
        chunked.Headers.ContentType = new("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, ChatPath) { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        using (var response = await _client.SendAsync(request))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            AssertOpenAiError(JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement, "invalid_request_error", expectedCode: "request_too_large");
        }

        await AssertServesNormallyAsync();
    }

    [Fact]
    public async Task Unknown_route_under_v1_is_404_in_the_error_shape()
    {
        var (body, status, response) = await GetAsync("/v1/audio/speech");
        Assert.Equal(HttpStatusCode.NotFound, status);
        AssertJsonContentType(response);
        AssertOpenAiError(body, "invalid_request_error", expectedCode: "unknown_url");

        (body, status, _) = await GetAsync("/v1/models/gpt-4o");
        Assert.Equal(HttpStatusCode.NotFound, status);
        AssertOpenAiError(body, "invalid_request_error", "model", "model_not_found");
    }

    [Fact]
    public async Task Wrong_method_is_405_in_the_error_shape()
    {
        var (body, status, response) = await GetAsync(ChatPath);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, status);
        Assert.Contains("POST", response.Content.Headers.Allow);
        AssertOpenAiError(body, "invalid_request_error", expectedCode: "method_not_allowed");
    }

    /// <summary>
    /// OpenAI answers any unknown URL with a 404 in its error shape ("Invalid URL (GET /v1/...)", type
    /// <c>invalid_request_error</c>); so does this server on every path nothing serves. A double slash is not merged
    /// (ASP.NET Core routes the path as sent): its 404 names the path meant, in that path's API shape.
    /// </summary>
    [Fact]
    public async Task A_double_slash_is_a_404_that_names_the_path_meant_in_that_apis_shape()
    {
        var (body, status, response) = await GetAsync(new Uri(fixture.Server.BaseAddress, "/").AbsoluteUri + "/v1/models");
        Assert.Equal("//v1/models", response.RequestMessage!.RequestUri!.AbsolutePath);
        Assert.Equal(HttpStatusCode.NotFound, status);
        AssertJsonContentType(response);
        AssertOpenAiError(body, "invalid_request_error", expectedCode: "unknown_url");
        var message = body.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("GET //v1/models", message, StringComparison.Ordinal);
        Assert.Contains("did you mean /v1/models?", message, StringComparison.Ordinal);

        using var anthropic = await _client.PostAsync(
            new Uri(fixture.Server.BaseAddress.AbsoluteUri + "/v1//messages"),
            new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.NotFound, anthropic.StatusCode);
        var error = JsonDocument.Parse(await anthropic.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("error", error.GetProperty("type").GetString());
        Assert.Equal("not_found_error", error.GetProperty("error").GetProperty("type").GetString());
        Assert.Contains("did you mean /v1/messages?", error.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        await AssertServesNormallyAsync();
    }

    [Theory]
    [InlineData("POST", "/chat/completions")]
    [InlineData("GET", "/models")]
    [InlineData("GET", "/favicon.ico")]
    [InlineData("GET", "/assets/app-MISSING.js")]
    public async Task An_unknown_path_outside_v1_is_a_404_in_the_openai_shape_that_points_to_v1(string method, string path)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        using var response = await _client.SendAsync(request);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        AssertJsonContentType(response);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        AssertOpenAiError(body, "invalid_request_error", expectedCode: "unknown_url");
        Assert.Contains("start with /v1", body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_chat_page_its_assets_and_the_operations_paths_are_still_served()
    {
        using var page = await _client.GetAsync(new Uri("/", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        var script = System.Text.RegularExpressions.Regex.Match(await page.Content.ReadAsStringAsync(), "src=\"(assets/app-[A-Z0-9]+\\.js)\"").Groups[1].Value;
        Assert.NotEmpty(script);
        using var asset = await _client.GetAsync(new Uri("/" + script, UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, asset.StatusCode);
        Assert.Equal("text/javascript", asset.Content.Headers.ContentType?.MediaType);
        using var health = await _client.GetAsync(new Uri("/health", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);

        // A wrong method on the page is a 405 in the error shape, with Allow.
        using var post = await _client.PostAsync(new Uri("/", UriKind.Relative), new StringContent("{}"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, post.StatusCode);
        Assert.Contains("GET", post.Content.Headers.Allow);
        AssertOpenAiError(JsonDocument.Parse(await post.Content.ReadAsStringAsync()).RootElement, "invalid_request_error", expectedCode: "method_not_allowed");
    }

    /// <summary>Monitors and load balancers probe with HEAD: every GET route answers it as GET, without the body.</summary>
    [Theory]
    [InlineData("/")]
    [InlineData("/health")]
    [InlineData("/v1/models")]
    public async Task Head_is_answered_as_get_without_a_body(string path)
    {
        // Headers as sent: a Content-Length the client computed from a buffered body would not be the server's.
        using var get = await _client.GetAsync(new Uri(path, UriKind.Relative), HttpCompletionOption.ResponseHeadersRead);
        using var headRequest = new HttpRequestMessage(HttpMethod.Head, path);
        using var head = await _client.SendAsync(headRequest, HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(get.Content.Headers.ContentType, head.Content.Headers.ContentType);
        if (get.Content.Headers.ContentLength is { } length)
        {
            Assert.Equal(length, head.Content.Headers.ContentLength);
        }

        // HttpClient reads no body after a HEAD: on the wire, the next answer must follow the HEAD's headers at once.
        var (headers, rest) = await RawHttp.HeadThenGetAsync(_client.BaseAddress!, path, "/health/live", CancellationToken.None);
        Assert.StartsWith("HTTP/1.1 200", headers, StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 200", rest, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Head_on_a_path_without_get_is_a_405_that_names_its_methods()
    {
        using var request = new HttpRequestMessage(HttpMethod.Head, ChatPath);
        using var response = await _client.SendAsync(request);

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Contains("POST", response.Content.Headers.Allow);
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Unknown_fields_are_ignored()
    {
        var (status, body, _) = await PostAsync(_client, ChatPath, $$"""
            {"messages":{{Hi}},"max_tokens":2,"tools":[],"parallel_tool_calls":false,"metadata":{"a":"b"},"x_custom":[1,{"y":null}]}
            """);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(2, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    private async Task<(JsonElement Body, HttpStatusCode Status, HttpResponseMessage Response)> GetAsync(string path)
    {
        var response = await _client.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        return (JsonDocument.Parse(text).RootElement.Clone(), response.StatusCode, response);
    }

    private async Task AssertServesNormallyAsync()
    {
        var (status, body, _) = await PostAsync(_client, ChatPath, $$"""{"messages":{{Hi}},"max_tokens":3}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(3, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }
}

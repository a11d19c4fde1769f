using LlmServer.Engine.Generation;
using LlmServer.Errors;
using LlmServer.Operations.Lifecycle;

namespace LlmServer.OpenAi;

/// <summary>
/// Gives every error on the <c>/v1</c> paths (and the routes marked <see cref="OpenAiErrorEndpoint"/>) an API's error shape:
/// refusals thrown by the endpoints, unknown routes (404), wrong methods (405), and unexpected exceptions (500,
/// logged). The refusal is written by the front end that owns the path (<see cref="RefusalWriters"/>): OpenAI's
/// shape, Anthropic's under <c>/v1/messages</c>; an engine refusal names the field as the endpoint's API does.
/// On any other path a request that nothing answered (no endpoint, no static file) gets the 404, or routing's own
/// 405, in the shape of the front end owning the path too (OpenAI's by default, as OpenAI answers every unknown
/// URL); other failures, and a 405 an endpoint or another component set, are left to whoever set them.
/// </summary>
/// <remarks>
/// A path with an empty segment (<c>//v1/models</c>, from a base URL ending in <c>/</c>) is not routed as the single
/// slash (ASP.NET Core does not merge slashes, and the key and limit checks match path prefixes): its 404 says so
/// and names the path meant, in the shape of the front end that path belongs to.
/// </remarks>
internal sealed class OpenAiErrorMiddleware(RequestDelegate next, ILogger<OpenAiErrorMiddleware> logger, RefusalWriters refusals)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var path = MergeSlashes(context.Request.Path);
        if (!IsOpenAiPath(path) && !OpenAiErrorEndpoint.Marks(context))
        {
            await next(context);
            if (!context.Response.HasStarted && context.Response.ContentType is null && IsUnanswered(context))
            {
                await RefuseUnansweredAsync(context, path);
            }

            return;
        }

        try
        {
            await next(context);
        }
        catch (Exception ex) when (context.RequestAborted.IsCancellationRequested && ex is OperationCanceledException or IOException)
        {
            // The client went away; there is no one to answer.
            return;
        }
        catch (Exception ex) when (ex is OpenAiException or GenerationException)
        {
            var error = ex as OpenAiException ?? OpenAiErrors.FromGeneration((GenerationException)ex, context.GetEndpoint()?.Metadata.GetMetadata<WireFieldNames>());
            OpenAiLog.Refused(logger, context.Request.Method, context.Request.Path, error.StatusCode, error.Message);
            if (error.AfterGeneration)
            {
                DrainingMiddleware.NoteGenerationRan(context);
            }

            if (!context.Response.HasStarted)
            {
                await refusals.WriteAsync(context, error.ToRefusal(), CancellationToken.None);
            }

            return;
        }
        catch (Exception ex) when (!Operations.RequestBodyLimitMiddleware.IsTooLarge(ex))
        {
            OpenAiLog.UnhandledError(logger, ex, context.Request.Method, context.Request.Path);
            if (!context.Response.HasStarted)
            {
                await refusals.WriteAsync(context, new Refusal(RefusalKind.Internal, "The server had an error while processing your request."), CancellationToken.None);
            }

            return;
        }

        if (!context.Response.HasStarted)
        {
            await RefuseUnansweredAsync(context, path);
        }
    }

    /// <summary>
    /// A 404 no endpoint wrote (nothing matched), or routing's own 405 (the path is known, the method is not); a 405
    /// an endpoint or another component set is theirs to answer.
    /// </summary>
    private static bool IsUnanswered(HttpContext context) => context.Response.StatusCode switch
    {
        StatusCodes.Status404NotFound => context.GetEndpoint() is null,
        StatusCodes.Status405MethodNotAllowed => IsRoutingMethodRefusal(context.GetEndpoint()),
        _ => false,
    };

    /// <summary>
    /// The endpoint routing selects when a path's endpoints all take other methods, named by this
    /// display name (<c>HttpMethodMatcherPolicy</c>; a test pins it).
    /// </summary>
    internal static bool IsRoutingMethodRefusal(Endpoint? endpoint) =>
        endpoint?.DisplayName == "405 HTTP Method Not Supported";

    /// <summary>Writes a routing 404 or 405 in the shape of the front end owning <paramref name="path"/> (slashes merged).</summary>
    private Task RefuseUnansweredAsync(HttpContext context, PathString path)
    {
        var request = context.Request;
        if (context.Response.StatusCode == StatusCodes.Status404NotFound)
        {
            return refusals.WriteAsync(context, new Refusal(RefusalKind.NotFound, UnknownUrlMessage(request.Method, request.Path, path), "unknown_url"), path, CancellationToken.None);
        }

        if (context.Response.StatusCode != StatusCodes.Status405MethodNotAllowed)
        {
            return Task.CompletedTask;
        }

        // Writing the error clears the headers; Allow goes back on as the response starts.
        var allow = context.Response.Headers.Allow.ToString();
        context.Response.OnStarting(() =>
        {
            context.Response.Headers.Allow = allow;
            return Task.CompletedTask;
        });
        return refusals.WriteAsync(
            context,
            new Refusal(RefusalKind.MethodNotAllowed, $"{request.Method} is not allowed on {request.Path}. Allowed: {allow}.", "method_not_allowed"),
            path,
            CancellationToken.None);
    }

    private static string UnknownUrlMessage(string method, PathString requested, PathString merged)
    {
        if (requested != merged)
        {
            return $"Unknown request URL: {method} {requested}. The path has an empty segment ('//'); did you mean {merged}? "
                + "A base URL that ends in '/' joined to a path that starts with one gives this: remove one of the slashes.";
        }

        return IsOpenAiPath(merged)
            ? $"Unknown request URL: {method} {requested}. Check the URL for typos."
            : $"Unknown request URL: {method} {requested}. The API's paths start with /v1 (for example POST /v1/chat/completions): check the client's base URL.";
    }

    /// <summary>The path with each run of slashes as one, to tell which API a mistyped URL was meant for.</summary>
    private static PathString MergeSlashes(PathString path)
    {
        var value = path.Value;
        if (value is null || !value.Contains("//", StringComparison.Ordinal))
        {
            return path;
        }

        var merged = new System.Text.StringBuilder(value.Length);
        foreach (var c in value)
        {
            if (c != '/' || merged.Length == 0 || merged[^1] != '/')
            {
                merged.Append(c);
            }
        }

        return new PathString(merged.ToString());
    }

    private static bool IsOpenAiPath(PathString path) => path.StartsWithSegments("/v1", StringComparison.OrdinalIgnoreCase);
}

using LlmServer.Engine.Generation;
using LlmServer.Errors;

namespace LlmServer.OpenAi;

/// <summary>
/// Gives every error on the <c>/v1</c> paths (and <c>/tokenize</c>, <c>/detokenize</c>) an API's error shape:
/// refusals thrown by the endpoints, unknown routes (404), wrong methods (405), and unexpected exceptions (500,
/// logged). The refusal is written by the front end that owns the path (<see cref="RefusalWriters"/>): OpenAI's
/// shape, Anthropic's under <c>/v1/messages</c>; an engine refusal names the field as the endpoint's API does.
/// </summary>
internal sealed class OpenAiErrorMiddleware(RequestDelegate next, ILogger<OpenAiErrorMiddleware> logger, RefusalWriters refusals)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (!IsOpenAiPath(context.Request.Path))
        {
            await next(context);
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

        if (context.Response.HasStarted)
        {
            return;
        }

        if (context.Response.StatusCode == StatusCodes.Status404NotFound)
        {
            await refusals.WriteAsync(
                context,
                new Refusal(RefusalKind.NotFound, $"Unknown request URL: {context.Request.Method} {context.Request.Path}. Check the URL for typos.", "unknown_url"),
                CancellationToken.None);
        }
        else if (context.Response.StatusCode == StatusCodes.Status405MethodNotAllowed)
        {
            // Writing the error clears the headers; Allow goes back on as the response starts.
            var allow = context.Response.Headers.Allow.ToString();
            context.Response.OnStarting(() =>
            {
                context.Response.Headers.Allow = allow;
                return Task.CompletedTask;
            });
            await refusals.WriteAsync(
                context,
                new Refusal(RefusalKind.MethodNotAllowed, $"{context.Request.Method} is not allowed on {context.Request.Path}. Allowed: {allow}.", "method_not_allowed"),
                CancellationToken.None);
        }
    }

    private static bool IsOpenAiPath(PathString path) =>
        path.StartsWithSegments("/v1", StringComparison.OrdinalIgnoreCase)
        || path.StartsWithSegments("/tokenize", StringComparison.OrdinalIgnoreCase)
        || path.StartsWithSegments("/detokenize", StringComparison.OrdinalIgnoreCase);
}

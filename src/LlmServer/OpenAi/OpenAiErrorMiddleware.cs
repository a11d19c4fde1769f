using LlmServer.Engine.Generation;

namespace LlmServer.OpenAi;

/// <summary>
/// Gives every answer on the OpenAI paths (<c>/v1</c>, <c>/tokenize</c>, <c>/detokenize</c>) the OpenAI error
/// shape: refusals thrown by the endpoints, unknown routes (404), wrong methods (405), and unexpected
/// exceptions (500 <c>server_error</c>, logged).
/// </summary>
internal sealed class OpenAiErrorMiddleware(RequestDelegate next, ILogger<OpenAiErrorMiddleware> logger)
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
            var error = ex as OpenAiException ?? OpenAiErrors.FromGeneration((GenerationException)ex);
            OpenAiLog.Refused(logger, context.Request.Method, context.Request.Path, error.StatusCode, error.Message);
            if (!context.Response.HasStarted)
            {
                await OpenAiErrors.WriteAsync(context, error, CancellationToken.None);
            }

            return;
        }
        catch (Exception ex) when (!Operations.RequestBodyLimitMiddleware.IsTooLarge(ex))
        {
            OpenAiLog.UnhandledError(logger, ex, context.Request.Method, context.Request.Path);
            if (!context.Response.HasStarted)
            {
                await OpenAiErrors.WriteAsync(
                    context,
                    StatusCodes.Status500InternalServerError,
                    OpenAiErrors.ServerError,
                    "The server had an error while processing your request.",
                    cancellationToken: CancellationToken.None);
            }

            return;
        }

        if (context.Response.HasStarted)
        {
            return;
        }

        if (context.Response.StatusCode == StatusCodes.Status404NotFound)
        {
            await OpenAiErrors.WriteAsync(
                context,
                StatusCodes.Status404NotFound,
                OpenAiErrors.InvalidRequestError,
                $"Unknown request URL: {context.Request.Method} {context.Request.Path}. Check the URL for typos.",
                code: "unknown_url",
                cancellationToken: CancellationToken.None);
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
            await OpenAiErrors.WriteAsync(
                context,
                StatusCodes.Status405MethodNotAllowed,
                OpenAiErrors.InvalidRequestError,
                $"{context.Request.Method} is not allowed on {context.Request.Path}. Allowed: {allow}.",
                code: "method_not_allowed",
                cancellationToken: CancellationToken.None);
        }
    }

    private static bool IsOpenAiPath(PathString path) =>
        path.StartsWithSegments("/v1", StringComparison.OrdinalIgnoreCase)
        || path.StartsWithSegments("/tokenize", StringComparison.OrdinalIgnoreCase)
        || path.StartsWithSegments("/detokenize", StringComparison.OrdinalIgnoreCase);
}

using System.Globalization;
using LlmServer.OpenAi;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations;

/// <summary>
/// Refuses a body announced larger than <c>Server:MaxRequestBodyBytes</c> with 413 in the OpenAI shape before any
/// front end reads it (Kestrel's limit, set to the same value, catches chunked bodies while they are read).
/// </summary>
internal sealed class RequestBodyLimitMiddleware(RequestDelegate next, IOptions<ServerOptions> options)
{
    private readonly long _maxBytes = options.Value.MaxRequestBodyBytes;

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.Request.ContentLength > _maxBytes)
        {
            OperationsResponses.CloseConnectionAfterResponse(context);
            await OpenAiErrors.WriteAsync(
                context,
                StatusCodes.Status413PayloadTooLarge,
                OpenAiErrors.InvalidRequestError,
                string.Create(CultureInfo.InvariantCulture, $"The request body is {context.Request.ContentLength} bytes; this server accepts at most {_maxBytes} (Server:MaxRequestBodyBytes)."),
                code: "request_too_large",
                cancellationToken: context.RequestAborted);
            return;
        }

        await next(context);
    }
}

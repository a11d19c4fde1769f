using System.Globalization;
using LlmServer.Errors;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations;

/// <summary>
/// The one enforcement point of <c>Server:MaxRequestBodyBytes</c>: a body announced larger is refused with 413
/// before any front end reads it, and a body that grows past it while read (chunked; Kestrel's limit, set to the
/// same value, stops the read) gets the same 413. The answer is in the shape of the front end that owns the path.
/// </summary>
internal sealed class RequestBodyLimitMiddleware(RequestDelegate next, IOptions<ServerOptions> options)
{
    private readonly long _maxBytes = options.Value.MaxRequestBodyBytes;

    /// <summary>The exception Kestrel throws when a body grows past its limit while it is read.</summary>
    public static bool IsTooLarge(Exception exception) =>
        exception is BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge };

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.Request.ContentLength > _maxBytes)
        {
            await RefuseAsync(context, context.Request.ContentLength);
            return;
        }

        try
        {
            await next(context);
        }
        catch (Exception ex) when (IsTooLarge(ex) && !context.Response.HasStarted)
        {
            await RefuseAsync(context, size: null);
        }
    }

    private Task RefuseAsync(HttpContext context, long? size)
    {
        var message = size is { } bytes
            ? string.Create(CultureInfo.InvariantCulture, $"The request body is {bytes} bytes; this server accepts at most {_maxBytes} (Server:MaxRequestBodyBytes).")
            : string.Create(CultureInfo.InvariantCulture, $"The request body is larger than this server accepts: at most {_maxBytes} bytes (Server:MaxRequestBodyBytes).");
        OperationsResponses.CloseConnectionAfterResponse(context);
        return context.RefuseAsync(new Refusal(RefusalKind.TooLarge, message, "request_too_large"), context.RequestAborted);
    }
}

using System.Globalization;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http.Features;

namespace LlmServer.Errors;

/// <summary>The one writer of an error response's status line and <c>Retry-After</c>; each API brings its own body.</summary>
internal static class ErrorResponse
{
    /// <summary>
    /// Writes an error as the whole response: the status, <c>Retry-After</c> (whole seconds, at least 1) when there
    /// is one, and the JSON body, unbuffered. Call it only before the response has started.
    /// </summary>
    public static Task WriteAsync<T>(HttpContext context, int statusCode, TimeSpan? retryAfter, T body, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.Clear();
        response.StatusCode = statusCode;
        if (retryAfter is { } delay)
        {
            SetRetryAfter(response, delay);
        }

        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        return response.WriteAsJsonAsync(body, typeInfo, contentType: "application/json", cancellationToken);
    }

    /// <summary>Sets <c>Retry-After</c> in whole seconds, at least 1.</summary>
    public static void SetRetryAfter(HttpResponse response, TimeSpan delay) =>
        response.Headers.RetryAfter = Math.Max(1, (long)Math.Ceiling(delay.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
}

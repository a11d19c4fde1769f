using LlmServer.Errors;

namespace LlmServer.Operations.Limits;

/// <summary>
/// A request to an endpoint marked <see cref="GenerationEndpoint"/> takes one of its key's permits before it runs
/// (429 in the path's API shape when none is left) and releases it when the response, stream included, ends, unless
/// the endpoint handed it to a generation that outlives the request (<see cref="CallPermit.Take"/>).
/// </summary>
internal sealed class GenerationPermitMiddleware(RequestDelegate next, KeyGenerationLimiter limiter)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (!limiter.IsEnabled || !GenerationEndpoint.Runs(context))
        {
            await next(context);
            return;
        }

        var call = context.RequestServices.GetRequiredService<CallPermit>();
        if (!limiter.TryAcquire(context.User, context.Connection.RemoteIpAddress, call))
        {
            await context.RefuseAsync(KeyGenerationLimiter.Refusal, context.RequestAborted);
            return;
        }

        try
        {
            await next(context);
        }
        finally
        {
            call.Release();
        }
    }
}

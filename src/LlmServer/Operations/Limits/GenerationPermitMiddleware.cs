using LlmServer.Errors;

namespace LlmServer.Operations.Limits;

/// <summary>
/// A request to an endpoint marked <see cref="GenerationEndpoint"/> takes one of its key's permits before it runs
/// (429 in the path's API shape when none is left). The endpoint releases it once the engine is done with what it
/// generates (<see cref="CallPermitHttpExtensions.ReleasePermitWhenEnded"/>), or hands it to a generation that outlives
/// the request (<see cref="CallPermit.Take"/>); at the latest it goes back when the response ends.
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

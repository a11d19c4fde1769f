using LlmServer.Errors;

namespace LlmServer.Operations.Limits;

/// <summary>
/// A request to an endpoint marked <see cref="GenerationEndpoint"/> opens one of its key's responses, held until the
/// response ends, and takes one of its key's generation permits before it runs (429 in the path's API shape when
/// either is used up). The endpoint releases the permit once the engine is done with what it generates
/// (<see cref="CallPermitHttpExtensions.ReleasePermitWhenEnded"/>), or hands it to a generation that outlives the
/// request (<see cref="CallPermit.Take"/>); at the latest it goes back when the response ends.
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

        if (!limiter.TryOpenResponse(context.User, context.Connection.RemoteIpAddress, out var response))
        {
            await context.RefuseAsync(KeyGenerationLimiter.OpenResponsesRefusal, context.RequestAborted);
            return;
        }

        using (response)
        {
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
}

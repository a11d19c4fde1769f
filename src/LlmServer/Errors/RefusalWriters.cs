using Microsoft.Extensions.DependencyInjection.Extensions;

namespace LlmServer.Errors;

/// <summary>A front end's writer of refusals in its wire shape.</summary>
internal interface IRefusalWriter
{
    /// <summary>Writes the refusal as the whole response (through <see cref="ErrorResponse"/>); only before the response has started.</summary>
    Task WriteAsync(HttpContext context, Refusal refusal, CancellationToken cancellationToken);
}

/// <summary>A path prefix and the front end that writes the refusals under it; the empty prefix is the default.</summary>
internal sealed record RefusalRoute(PathString Prefix, IRefusalWriter Writer);

/// <summary>
/// The one home of "which front end answers this path": each front end registers its path prefix and writer at
/// start (<see cref="RefusalRegistration.AddRefusalWriter"/>), the longest matching prefix wins, and the OpenAI API
/// is the default. The operations middleware runs in front of every front end and writes through here.
/// </summary>
internal sealed class RefusalWriters(IEnumerable<RefusalRoute> routes)
{
    private readonly RefusalRoute[] _routes = [.. routes.OrderByDescending(r => r.Prefix.Value?.Length ?? 0)];

    public Task WriteAsync(HttpContext context, Refusal refusal, CancellationToken cancellationToken) =>
        WriteAsync(context, refusal, context.Request.Path, cancellationToken);

    /// <summary>Writes in the shape of the front end owning <paramref name="path"/> (a mistyped request's intended path).</summary>
    public Task WriteAsync(HttpContext context, Refusal refusal, PathString path, CancellationToken cancellationToken) =>
        WriterFor(path).WriteAsync(context, refusal, cancellationToken);

    private IRefusalWriter WriterFor(PathString path) =>
        Array.Find(_routes, r => path.StartsWithSegments(r.Prefix, StringComparison.OrdinalIgnoreCase))?.Writer
            ?? throw new InvalidOperationException($"No front end writes the refusals of {path}; the OpenAI API registers the default writer.");
}

internal static class RefusalRegistration
{
    /// <summary>
    /// Makes <paramref name="writer"/> answer the refusals of paths under <paramref name="prefix"/> (empty: every path
    /// no other front end claims). A front end registered twice keeps one route; two writers for one prefix are a bug.
    /// </summary>
    public static IServiceCollection AddRefusalWriter(this IServiceCollection services, string prefix, IRefusalWriter writer)
    {
        services.TryAddSingleton<RefusalWriters>();
        var route = new RefusalRoute(new PathString(prefix), writer);
        var existing = services
            .Select(d => d.ServiceType == typeof(RefusalRoute) ? d.ImplementationInstance as RefusalRoute : null)
            .FirstOrDefault(r => r is not null && string.Equals(r.Prefix.Value, route.Prefix.Value, StringComparison.OrdinalIgnoreCase));
        if (existing is null)
        {
            services.AddSingleton(route);
        }
        else if (existing.Writer.GetType() != writer.GetType())
        {
            throw new InvalidOperationException($"The refusals of {prefix} already have a writer ({existing.Writer.GetType().Name}).");
        }

        return services;
    }

    /// <summary>Writes <paramref name="refusal"/> in the shape of the front end that owns the request's path.</summary>
    public static Task RefuseAsync(this HttpContext context, Refusal refusal, CancellationToken cancellationToken) =>
        context.RequestServices.GetRequiredService<RefusalWriters>().WriteAsync(context, refusal, cancellationToken);
}

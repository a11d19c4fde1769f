using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Auth;

/// <summary>Which request paths belong to the API (need a key, count against limits, are refused while draining).</summary>
internal sealed class ProtectedPaths(IOptions<ApiKeyOptions> options)
{
    private readonly PathString[] _prefixes = [.. (options.Value.ProtectedPaths ?? [.. ApiKeyOptions.DefaultProtectedPaths]).Select(p => new PathString(p.TrimEnd('/')))];

    public bool Contains(PathString path) => _prefixes.Any(p => path.StartsWithSegments(p, StringComparison.OrdinalIgnoreCase));
}

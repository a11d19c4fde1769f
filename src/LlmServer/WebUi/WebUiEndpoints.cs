using Microsoft.Extensions.FileProviders;
using Microsoft.Net.Http.Headers;

namespace LlmServer.WebUi;

/// <summary>
/// Serves the chat page that web/ builds into wwwroot/ next to the server: <c>/</c> is its index.html (always
/// revalidated, so a new build shows at once), and <c>/assets/</c> holds content-hashed files cached for a year.
/// </summary>
internal static partial class WebUiEndpoints
{
    private const string WebRootFolder = "wwwroot";
    private const string IndexFile = "index.html";
    private const string AssetsPrefix = "/assets/";
    private const string ImmutableCaching = "public, max-age=31536000, immutable";
    private const string Revalidate = "no-cache";

    // The page loads only its own files and talks only to its own origin; markdown images may be inline data only,
    // so an answer cannot make the browser call another host.
    private const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    public static WebApplication MapWebUi(this WebApplication app)
    {
        var root = Path.Combine(app.Environment.ContentRootPath, WebRootFolder);
        var index = Path.Combine(root, IndexFile);
        if (!File.Exists(index))
        {
            LogPageMissing(app.Logger, index);
            app.MapGet("/", () => Results.Text(
                "The chat page was not built into this server (web/ needs Node.js and npm at build time). The API works as usual.",
                statusCode: StatusCodes.Status404NotFound));
            return app;
        }

        var files = new PhysicalFileProvider(root);
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = files,
            OnPrepareResponse = context => SetHeaders(context.Context, context.Context.Request.Path),
        });
        app.MapGet("/", (HttpContext context) =>
        {
            var file = files.GetFileInfo(IndexFile);
            SetHeaders(context, "/" + IndexFile);
            return Results.File(
                file.PhysicalPath!,
                "text/html; charset=utf-8",
                lastModified: file.LastModified,
                entityTag: new EntityTagHeaderValue($"\"{file.LastModified.UtcTicks:x}-{file.Length:x}\""));
        }).ExcludeFromDescription();
        return app;
    }

    private static void SetHeaders(HttpContext context, PathString path)
    {
        var headers = context.Response.Headers;
        var isAsset = path.StartsWithSegments(AssetsPrefix.TrimEnd('/'), StringComparison.Ordinal);
        headers.CacheControl = isAsset ? ImmutableCaching : Revalidate;
        headers.XContentTypeOptions = "nosniff";
        if (!isAsset)
        {
            headers.ContentSecurityPolicy = ContentSecurityPolicy;
            headers.XFrameOptions = "DENY";
            headers["Referrer-Policy"] = "no-referrer";
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The chat page is missing ({IndexPath}); / explains that it was not built.")]
    private static partial void LogPageMissing(ILogger logger, string indexPath);
}

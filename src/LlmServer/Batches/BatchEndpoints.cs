using LlmServer.OpenAi;
using LlmServer.Operations.Auth;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace LlmServer.Batches;

/// <summary>The Files API (purpose <c>batch</c>) and the Batch API; everything is owned by the caller's API key.</summary>
public static class BatchEndpoints
{
    public static IServiceCollection AddBatchApi(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<BatchOptions>().Bind(configuration.GetSection(BatchOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BatchOptions>, BatchOptionsValidator>());
        services.TryAddSingleton<BatchStore>();
        services.TryAddSingleton<BatchRunner>();
        services.AddHostedService(sp => sp.GetRequiredService<BatchRunner>());
        services.TryAddSingleton<BatchHandlers>();
        return services;
    }

    public static WebApplication MapBatchApi(this WebApplication app)
    {
        var handlers = app.Services.GetRequiredService<BatchHandlers>();
        app.MapPost("/v1/files", handlers.UploadFileAsync);
        app.MapGet("/v1/files", handlers.ListFilesAsync);
        app.MapGet("/v1/files/{id}", handlers.GetFileAsync);
        app.MapGet("/v1/files/{id}/content", handlers.GetFileContentAsync);
        app.MapDelete("/v1/files/{id}", handlers.DeleteFileAsync);
        app.MapPost("/v1/batches", handlers.CreateBatchAsync);
        app.MapGet("/v1/batches", handlers.ListBatchesAsync);
        app.MapGet("/v1/batches/{id}", handlers.GetBatchAsync);
        app.MapPost("/v1/batches/{id}/cancel", handlers.CancelBatchAsync);
        return app;
    }
}

internal sealed class BatchHandlers(BatchStore store, BatchRunner runner, OpenAiResponder responder, IOptions<BatchOptions> options, TimeProvider time)
{
    private const string CompletionWindow = "24h";
    private const int DefaultListLimit = 20;
    private const int MaxListLimit = 100;

    public async Task UploadFileAsync(HttpContext context)
    {
        var aborted = context.RequestAborted;
        var maxBytes = options.Value.MaxFileBytes;
        if (!context.Request.HasFormContentType)
        {
            throw new OpenAiException("Upload the file as multipart/form-data with the fields 'purpose' and 'file'.");
        }

        var form = await context.Request.ReadFormAsync(aborted);
        var purpose = form["purpose"].ToString();
        if (purpose != "batch")
        {
            throw OpenAiException.InvalidField("purpose", $"Invalid value for 'purpose': '{purpose}'. This server accepts files with purpose 'batch' only.");
        }

        var file = form.Files.GetFile("file") ?? throw OpenAiException.InvalidField("file", "'file' is required.");
        if (file.Length > maxBytes)
        {
            throw new OpenAiException(StatusCodes.Status413PayloadTooLarge, OpenAiErrors.InvalidRequestError, $"The file is larger than this server accepts ({maxBytes} bytes, Batches:MaxFileBytes).", "file", "file_too_large");
        }

        using var buffer = new MemoryStream((int)file.Length);
        await file.CopyToAsync(buffer, aborted);
        var content = buffer.ToArray();
        var (_, errors) = BatchFormat.Parse(content, options.Value.MaxLines, endpoint: null);
        if (errors.Count > 0)
        {
            throw BatchFormat.Refusal(errors);
        }

        var stored = new FileObject(OpenAiResponder.NewId("file-"), "file", content.Length, responder.UnixNow(), file.FileName, purpose, "processed");
        await store.AddFileAsync(stored, context.User.GetApiKeyId(), content, aborted);
        await context.Response.WriteAsJsonAsync(stored, BatchJson.Context.FileObject, contentType: null, aborted);
    }

    public async Task ListFilesAsync(HttpContext context)
    {
        var files = await store.ListFilesAsync(context.User.GetApiKeyId(), context.RequestAborted);
        await context.Response.WriteAsJsonAsync(new FileList("list", files), BatchJson.Context.FileList, contentType: null, context.RequestAborted);
    }

    public async Task GetFileAsync(HttpContext context, string id)
    {
        var file = await store.GetFileAsync(id, context.User.GetApiKeyId(), context.RequestAborted) ?? throw NotFound("file", id);
        await context.Response.WriteAsJsonAsync(file, BatchJson.Context.FileObject, contentType: null, context.RequestAborted);
    }

    public async Task GetFileContentAsync(HttpContext context, string id)
    {
        var content = await store.GetFileContentAsync(id, context.User.GetApiKeyId(), context.RequestAborted) ?? throw NotFound("file", id);
        context.Response.ContentType = "application/jsonl";
        await context.Response.Body.WriteAsync(content, context.RequestAborted);
    }

    public async Task DeleteFileAsync(HttpContext context, string id)
    {
        if (!await store.DeleteFileAsync(id, context.User.GetApiKeyId(), context.RequestAborted))
        {
            throw NotFound("file", id);
        }

        await context.Response.WriteAsJsonAsync(new FileDeleted(id, "file", true), BatchJson.Context.FileDeleted, contentType: null, context.RequestAborted);
    }

    public async Task CreateBatchAsync(HttpContext context)
    {
        var aborted = context.RequestAborted;
        var request = await JsonBodyReader.ReadAsync(context, BatchJson.Context.CreateBatchRequest, aborted);
        var owner = context.User.GetApiKeyId();
        var endpoint = request.Endpoint ?? throw OpenAiException.InvalidField("endpoint", "'endpoint' is required.");
        if (!BatchFormat.Endpoints.Contains(endpoint))
        {
            throw OpenAiException.InvalidField("endpoint", $"Invalid value for 'endpoint': '{endpoint}'. Batches run {string.Join(", ", BatchFormat.Endpoints)}.");
        }

        if (request.CompletionWindow is not CompletionWindow)
        {
            throw OpenAiException.InvalidField("completion_window", $"Invalid value for 'completion_window': '{request.CompletionWindow}'. Supported: {CompletionWindow}.");
        }

        var inputId = request.InputFileId ?? throw OpenAiException.InvalidField("input_file_id", "'input_file_id' is required.");
        var input = await store.GetFileAsync(inputId, owner, aborted) ?? throw NoSuchFile();
        if (input.Purpose != "batch")
        {
            throw OpenAiException.InvalidField("input_file_id", $"The file '{inputId}' has purpose '{input.Purpose}', not 'batch'.");
        }

        var now = time.GetUtcNow();
        var batch = new BatchObject(
            OpenAiResponder.NewId("batch_"), "batch", endpoint, null, inputId, CompletionWindow, "validating", null, null,
            now.ToUnixTimeSeconds(), null, now.AddHours(24).ToUnixTimeSeconds(), null, null, null, null, null, null,
            new BatchRequestCounts(0, 0, 0), request.Metadata);
        // The file may be deleted between the check above and the copy the batch takes of it.
        if (!await store.CreateBatchAsync(batch, owner, aborted))
        {
            throw NoSuchFile();
        }

        runner.Wake();
        await context.Response.WriteAsJsonAsync(batch, BatchJson.Context.BatchObject, contentType: null, aborted);

        OpenAiException NoSuchFile() => OpenAiException.InvalidField("input_file_id", $"No file with id '{inputId}' exists.");
    }

    public async Task GetBatchAsync(HttpContext context, string id)
    {
        var found = await store.GetBatchAsync(id, context.User.GetApiKeyId(), anyOwner: false, context.RequestAborted) ?? throw NotFound("batch", id);
        await context.Response.WriteAsJsonAsync(found.Batch, BatchJson.Context.BatchObject, contentType: null, context.RequestAborted);
    }

    public async Task ListBatchesAsync(HttpContext context)
    {
        var limit = DefaultListLimit;
        if (context.Request.Query.TryGetValue("limit", out var limitText) && (!int.TryParse(limitText, out limit) || limit is < 1 or > MaxListLimit))
        {
            throw OpenAiException.InvalidField("limit", $"'limit' must be an integer between 1 and {MaxListLimit}.");
        }

        var after = context.Request.Query.TryGetValue("after", out var afterText) ? afterText.ToString() : null;
        var page = await store.ListBatchesAsync(context.User.GetApiKeyId(), after, limit + 1, context.RequestAborted);
        var data = page.Take(limit).ToList();
        var list = new BatchList("list", data, data.FirstOrDefault()?.Id, data.LastOrDefault()?.Id, page.Count > limit);
        await context.Response.WriteAsJsonAsync(list, BatchJson.Context.BatchList, contentType: null, context.RequestAborted);
    }

    public async Task CancelBatchAsync(HttpContext context, string id)
    {
        var owner = context.User.GetApiKeyId();
        var aborted = context.RequestAborted;
        _ = await store.GetBatchAsync(id, owner, anyOwner: false, aborted) ?? throw NotFound("batch", id);
        if (await store.MoveAsync(id, "cancelling", time.GetUtcNow().ToUnixTimeSeconds(), ["validating", "in_progress"], aborted))
        {
            runner.Cancel(id);
        }

        var found = await store.GetBatchAsync(id, owner, anyOwner: false, aborted);
        await context.Response.WriteAsJsonAsync(found!.Value.Batch, BatchJson.Context.BatchObject, contentType: null, aborted);
    }

    private static OpenAiException NotFound(string what, string id) =>
        new(StatusCodes.Status404NotFound, OpenAiErrors.InvalidRequestError, $"No {what} with id '{id}' exists.", "id", "not_found");
}

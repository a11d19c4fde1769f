using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;

namespace LlmServer.Operations.ModelDownload;

/// <summary>
/// Downloads a GGUF into the models folder: into <c>NAME.part</c>, resuming an existing part with an HTTP Range
/// request (across retries and across runs), verifying the SHA-256 when one is configured, and renaming to
/// <c>NAME</c> only once the whole file is there and checks out.
/// </summary>
internal sealed class ModelDownloader(HttpClient http, TimeProvider timeProvider, TextWriter output, bool interactive)
{
    public const string PartSuffix = ".part";

    /// <summary>
    /// Downloads <see cref="ModelDownloadOptions.Url"/>; returns the full path of the finished file. The options are
    /// valid (<see cref="ModelDownloadOptionsValidator"/> ran at start).
    /// </summary>
    public async Task<string> DownloadAsync(ModelDownloadOptions options, CancellationToken cancellationToken)
    {
        var url = new Uri(options.Url, UriKind.Absolute);
        var directory = Path.GetFullPath(options.Directory);
        Directory.CreateDirectory(directory);
        var target = Path.Combine(directory, FileNameFor(options, url));
        var part = target + PartSuffix;
        output.WriteLine($"No model configured and none in {directory}: downloading {url}");
        output.WriteLine($"  to {target} (Ctrl+C stops; the next start resumes).");

        var progress = new DownloadProgressBar(output, interactive, timeProvider);
        for (var attempt = 1; ; attempt++)
        {
            var before = File.Exists(part) ? new FileInfo(part).Length : 0;
            try
            {
                await FetchAsync(url, part, progress, TimeSpan.FromSeconds(options.StallSeconds), cancellationToken);
                break;
            }
            catch (Exception ex) when (IsTransient(ex, cancellationToken) && attempt < options.Attempts)
            {
                var after = File.Exists(part) ? new FileInfo(part).Length : 0;
                output.WriteLine();
                output.WriteLine($"Download interrupted ({ex.Message}); resuming (attempt {attempt + 1} of {options.Attempts}).");

                // Progress means the link works and was cut: resume at once. No progress: back off before hammering it.
                if (after <= before)
                {
                    await Task.Delay(TimeSpan.FromSeconds(attempt * 2), timeProvider, cancellationToken);
                }
            }
            catch (Exception ex) when (IsTransient(ex, cancellationToken))
            {
                throw new ModelDownloadException($"Could not download {url}: {ex.Message.TrimEnd('.')}.", ex);
            }
        }

        await VerifyAsync(part, options.Sha256, cancellationToken);
        File.Move(part, target);
        output.WriteLine($"Model saved to {target}");
        return target;
    }

    private async Task FetchAsync(Uri url, string part, DownloadProgressBar progress, TimeSpan stall, CancellationToken cancellationToken)
    {
        var existing = File.Exists(part) ? new FileInfo(part).Length : 0;
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (existing > 0)
        {
            request.Headers.Range = new RangeHeaderValue(existing, null);
        }

        using var stallGuard = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stallGuard.CancelAfter(stall);
        using var response = await SendAsync(request, stallGuard, cancellationToken);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable && existing > 0)
        {
            // The part already holds every byte (an earlier run stopped between download and rename), or it is
            // longer than the file now served: then it belongs to another file, and we start over.
            if (response.Content.Headers.ContentRange?.Length == existing)
            {
                return;
            }

            File.Delete(part);
            throw new IOException("the partial file does not match the file served; starting over");
        }

        if ((int)response.StatusCode >= 500 || response.StatusCode == HttpStatusCode.TooManyRequests)
        {
            throw new HttpRequestException($"HTTP {(int)response.StatusCode} {response.ReasonPhrase}", null, response.StatusCode);
        }

        if (!response.IsSuccessStatusCode)
        {
            throw new ModelDownloadException($"Could not download {url}: HTTP {(int)response.StatusCode} {response.ReasonPhrase}.");
        }

        var resumed = response.StatusCode == HttpStatusCode.PartialContent && response.Content.Headers.ContentRange?.From == existing;
        var offset = resumed ? existing : 0;
        var total = resumed ? response.Content.Headers.ContentRange?.Length : response.Content.Headers.ContentLength;
        progress.Start(offset);

        var received = offset;
        await using (var file = new FileStream(part, resumed ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
        await using (var body = await response.Content.ReadAsStreamAsync(stallGuard.Token))
        {
            var buffer = new byte[1 << 16];
            while (true)
            {
                stallGuard.CancelAfter(stall);
                var read = await ReadAsync(body, buffer, stallGuard, cancellationToken);
                if (read == 0)
                {
                    break;
                }

                await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                received += read;
                progress.Report(received, total);
            }
        }

        progress.Report(received, total, final: true);
        if (total is { } expected && received != expected)
        {
            throw new IOException($"the connection closed after {received} of {expected} bytes");
        }
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationTokenSource stallGuard, CancellationToken cancellationToken)
    {
        try
        {
            return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, stallGuard.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException("the server did not answer in time");
        }
    }

    private static async Task<int> ReadAsync(Stream body, byte[] buffer, CancellationTokenSource stallGuard, CancellationToken cancellationToken)
    {
        try
        {
            return await body.ReadAsync(buffer, stallGuard.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException("no data arrived for too long");
        }
    }

    private async Task VerifyAsync(string part, string? expectedSha256, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(expectedSha256))
        {
            output.WriteLine("Warning: Model:Download:Sha256 is not set, so the download was not verified.");
            return;
        }

        string actual;
        await using (var file = new FileStream(part, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true))
        {
            actual = Convert.ToHexStringLower(await SHA256.HashDataAsync(file, cancellationToken));
        }

        if (!string.Equals(actual, expectedSha256.Trim(), StringComparison.OrdinalIgnoreCase))
        {
            // A finished file with the wrong hash cannot be repaired by resuming; keep nothing of it.
            File.Delete(part);
            throw new ModelDownloadException(
                $"The downloaded file's SHA-256 is {actual}, but Model:Download:Sha256 expects {expectedSha256.Trim().ToLowerInvariant()}. " +
                "The file was deleted. Check the URL and the checksum.");
        }

        output.WriteLine("SHA-256 verified.");
    }

    private static bool IsTransient(Exception exception, CancellationToken cancellationToken)
        => !cancellationToken.IsCancellationRequested && exception is HttpRequestException or IOException or TimeoutException;

    /// <summary>The configured file name (checked at start), else the URL's last segment, which only now can be checked.</summary>
    private static string FileNameFor(ModelDownloadOptions options, Uri url)
    {
        var name = options.FileName?.Trim() ?? string.Empty;
        if (name.Length == 0)
        {
            name = Path.GetFileName(Uri.UnescapeDataString(url.AbsolutePath));
            if (name.Length == 0 || name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || name is "." or "..")
            {
                throw new ModelDownloadException($"Cannot tell a file name from '{url}'; set Model:Download:FileName.");
            }
        }

        return name.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) ? name : name + ".gguf";
    }
}

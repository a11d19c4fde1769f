using System.Globalization;

namespace LlmServer.Operations.ModelDownload;

/// <summary>
/// A console progress bar: bytes, percent, rate and time left. On a terminal it redraws one line; when the output
/// is redirected (a log file, a container) it writes a line every ten percent instead.
/// </summary>
internal sealed class DownloadProgressBar(TextWriter output, bool interactive, TimeProvider timeProvider)
{
    private const int BarWidth = 30;
    private static readonly TimeSpan RedrawInterval = TimeSpan.FromMilliseconds(250);

    private long _startTimestamp;
    private long _startBytes;
    private long _lastDrawTimestamp;
    private int _lastDecile = -1;

    /// <summary>Starts timing the rate from <paramref name="resumedBytes"/> (bytes already on disk).</summary>
    public void Start(long resumedBytes)
    {
        _startTimestamp = timeProvider.GetTimestamp();
        _startBytes = resumedBytes;
        _lastDrawTimestamp = 0;
    }

    public void Report(long received, long? total, bool final = false)
    {
        var now = timeProvider.GetTimestamp();
        if (!final && _lastDrawTimestamp != 0 && timeProvider.GetElapsedTime(_lastDrawTimestamp, now) < RedrawInterval)
        {
            return;
        }

        _lastDrawTimestamp = now;
        var elapsed = timeProvider.GetElapsedTime(_startTimestamp, now).TotalSeconds;
        var rate = elapsed > 0 ? (received - _startBytes) / elapsed : 0;
        if (interactive)
        {
            output.Write('\r' + Format(received, total, rate) + (final ? Environment.NewLine : string.Empty));
            output.Flush();
            return;
        }

        var decile = total is > 0 ? (int)(received * 10 / total.Value) : (int)(received / (100L << 20));
        if (decile != _lastDecile || final)
        {
            _lastDecile = decile;
            output.WriteLine(Format(received, total, rate));
        }
    }

    /// <summary>For example <c>[#########.....................]  31.2%  146.3 MiB / 468.6 MiB  12.1 MiB/s  0:26 left</c>.</summary>
    public static string Format(long received, long? total, double bytesPerSecond)
    {
        var speed = $"{Size(bytesPerSecond)}/s";
        if (total is not > 0)
        {
            return $"{Size(received)}  {speed}";
        }

        var fraction = Math.Clamp((double)received / total.Value, 0, 1);
        var filled = (int)(fraction * BarWidth);
        var left = bytesPerSecond > 0 ? TimeSpan.FromSeconds((total.Value - received) / bytesPerSecond) : (TimeSpan?)null;
        var eta = left is { } l ? (l.TotalHours >= 1 ? l.ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture) : l.ToString(@"m\:ss", CultureInfo.InvariantCulture)) : "--:--";
        return string.Create(CultureInfo.InvariantCulture,
            $"[{new string('#', filled)}{new string('.', BarWidth - filled)}] {fraction * 100,5:0.0}%  {Size(received)} / {Size(total.Value)}  {speed}  {eta} left");
    }

    private static string Size(double bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1L << 30):0.00} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1L << 20):0.0} MiB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1L << 10):0.0} KiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes:0} B"),
    };
}

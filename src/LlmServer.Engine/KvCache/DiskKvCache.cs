using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Text;
using System.Threading.Channels;
using LlmServer.Engine.Threading;
using Microsoft.Extensions.Logging;

namespace LlmServer.Engine.KvCache;

/// <summary>
/// Sessions' KV states on disk, one file per session and model, within a byte budget (least recently used deleted
/// first). <see cref="Save"/> is called by the scheduler thread and never waits: the state is queued for a background
/// writer (bounded; a full queue skips the save), written to a temporary file and renamed into place, so a crash
/// leaves the old file or the new one, never half of one. <see cref="TryLoad"/> sees queued states before they reach
/// the disk. Every failure is logged and answered as a miss: the session is prefilled instead.
/// </summary>
internal sealed partial class DiskKvCache : IDisposable
{
    private const string Extension = ".kv";

    private readonly string _directory;
    private readonly long _maxBytes;
    private readonly UInt128 _model;
    private readonly string _modelPrefix;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<WriteItem> _queue;
    private readonly ConcurrentDictionary<string, SavedKvState> _pending = new(StringComparer.Ordinal);
    private readonly Dictionary<string, FileEntry> _files = new(StringComparer.Ordinal);
    private readonly Lock _filesLock = new();
    private readonly Task _writer;
    private readonly ChangeSignal _changed = new();
    private long _totalBytes;
    private int _disposed;

    public DiskKvCache(KvCacheOptions options, UInt128 model, TimeProvider time, ILogger logger)
    {
        _directory = Path.GetFullPath(options.ResolvedDirectory);
        _maxBytes = options.KvCacheMaxBytes;
        _model = model;
        _modelPrefix = model.ToString("x32", System.Globalization.CultureInfo.InvariantCulture)[..16] + "-";
        _time = time;
        _logger = logger;
        Directory.CreateDirectory(_directory);
        LoadIndex();
        _queue = Channel.CreateBounded<WriteItem>(new BoundedChannelOptions(Math.Max(1, options.KvCacheWriteQueue))
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _writer = Task.Factory.StartNew(WriteLoopAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    public string DirectoryPath => _directory;

    /// <summary>
    /// Raised on the writer thread when a queued state is in place on disk (true) or its write failed (false, logged);
    /// a save superseded or deleted before its write raises nothing.
    /// </summary>
    public event Action<bool>? WriteEnded;

    /// <summary>
    /// Completes when a state file is next written into place or deleted, so a caller can wait for the background
    /// writer (or a delete the scheduler applies later) without polling the folder: take the task, check the folder,
    /// then await the task.
    /// </summary>
    internal Task NextChange => _changed.Next;

    /// <summary>Bytes of the state files on disk.</summary>
    public long TotalBytes
    {
        get
        {
            lock (_filesLock)
            {
                return _totalBytes;
            }
        }
    }

    /// <summary>
    /// Queues a session's state for writing. Returns false (logged) when the state is too large, or when the queue is
    /// full and <paramref name="waitForRoom"/> is false (the decode thread never waits; shutdown does).
    /// </summary>
    public bool Save(SavedKvState saved, bool waitForRoom = false)
    {
        if (saved.State.LongLength + (saved.Tokens.LongLength * 4) > _maxBytes)
        {
            LogTooLarge(_logger, saved.SessionKey, saved.State.LongLength, _maxBytes);
            return false;
        }

        _pending[saved.SessionKey] = saved;
        if (_queue.Writer.TryWrite(new WriteItem(saved, null)))
        {
            return true;
        }

        if (waitForRoom)
        {
            try
            {
                _queue.Writer.WriteAsync(new WriteItem(saved, null)).AsTask().GetAwaiter().GetResult();
                return true;
            }
            catch (ChannelClosedException)
            {
            }
        }

        _pending.TryRemove(new KeyValuePair<string, SavedKvState>(saved.SessionKey, saved));
        LogQueueFull(_logger, saved.SessionKey);
        return false;
    }

    /// <summary>The session's saved state for this model, or null (missing, corrupt or mismatched: logged).</summary>
    public SavedKvState? TryLoad(string sessionKey)
    {
        if (_pending.TryGetValue(sessionKey, out var pending))
        {
            return pending;
        }

        var name = FileName(sessionKey);
        var path = Path.Combine(_directory, name);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            // A vanished folder is a missing file: the write that could not go there has already warned.
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogUnreadable(_logger, sessionKey, path, ex.Message);
            return null;
        }

        var saved = KvStateFile.TryRead(bytes, sessionKey, _model, out var problem);
        if (saved is null)
        {
            LogUnreadable(_logger, sessionKey, path, problem!);
            Remove(name);
            return null;
        }

        Touch(name, path);
        return saved;
    }

    /// <summary>Forgets a session's state (queued or on disk): the session was deleted.</summary>
    public void Delete(string sessionKey)
    {
        lock (_filesLock)
        {
            _pending.TryRemove(sessionKey, out _);
        }

        Remove(FileName(sessionKey));
    }

    /// <summary>Completes when every state queued before the call is on disk.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        var barrier = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            await _queue.Writer.WriteAsync(new WriteItem(null, barrier), cancellationToken);
        }
        catch (ChannelClosedException)
        {
            return;
        }

        await barrier.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Writes what is queued (bounded wait) and stops the writer.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _queue.Writer.TryComplete();
        if (!_writer.Wait(TimeSpan.FromSeconds(30)))
        {
            LogWriterStuck(_logger, _directory);
        }
    }

    private string FileName(string sessionKey) =>
        _modelPrefix + XxHash128.HashToUInt128(Encoding.UTF8.GetBytes(sessionKey)).ToString("x32", System.Globalization.CultureInfo.InvariantCulture) + Extension;

    private async Task WriteLoopAsync()
    {
        await foreach (var item in _queue.Reader.ReadAllAsync())
        {
            if (item.Barrier is { } barrier)
            {
                barrier.TrySetResult();
                continue;
            }

            try
            {
                if (Write(item.State!))
                {
                    WriteEnded?.Invoke(true);
                }
            }
            catch (Exception ex)
            {
                // A full disk or a vanished folder costs that session a prefill, nothing more.
                _pending.TryRemove(new KeyValuePair<string, SavedKvState>(item.State!.SessionKey, item.State));
                LogWriteFailed(_logger, item.State.SessionKey, ex);
                WriteEnded?.Invoke(false);
            }
        }
    }

    /// <summary>Writes a queued state into place; false when it was superseded or deleted before its turn.</summary>
    private bool Write(SavedKvState saved)
    {
        if (!_pending.TryGetValue(saved.SessionKey, out var current) || !ReferenceEquals(current, saved))
        {
            // Superseded by a newer save of the same session, or deleted.
            return false;
        }

        var name = FileName(saved.SessionKey);
        var path = Path.Combine(_directory, name);
        var temporary = path + "." + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) + ".tmp";
        long length;
        using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
        {
            KvStateFile.Write(file, _model, saved);
            file.Flush(flushToDisk: true);
            length = file.Length;
        }

        lock (_filesLock)
        {
            if (!_pending.TryRemove(new KeyValuePair<string, SavedKvState>(saved.SessionKey, saved)))
            {
                File.Delete(temporary);
                return false;
            }

            File.Move(temporary, path, overwrite: true);
            var now = _time.GetUtcNow().UtcDateTime;
            File.SetLastWriteTimeUtc(path, now);
            if (_files.Remove(name, out var old))
            {
                _totalBytes -= old.Length;
            }

            _files[name] = new FileEntry(length, now);
            _totalBytes += length;
            LogSaved(_logger, saved.SessionKey, saved.Tokens.Length, length);
            EnforceBudget(name);
        }

        SignalChange();
        return true;
    }

    /// <summary>Deletes least recently used files until the folder fits the budget (never the one just written).</summary>
    private void EnforceBudget(string keep)
    {
        while (_totalBytes > _maxBytes)
        {
            string? oldest = null;
            var oldestAt = DateTime.MaxValue;
            foreach (var (name, entry) in _files)
            {
                if (name != keep && entry.LastUsed < oldestAt)
                {
                    oldest = name;
                    oldestAt = entry.LastUsed;
                }
            }

            if (oldest is null)
            {
                return;
            }

            DeleteFile(oldest);
            LogEvictedFromDisk(_logger, oldest, _totalBytes, _maxBytes);
        }
    }

    private void Touch(string name, string path)
    {
        var now = _time.GetUtcNow().UtcDateTime;
        lock (_filesLock)
        {
            if (_files.TryGetValue(name, out var entry))
            {
                _files[name] = entry with { LastUsed = now };
            }
        }

        try
        {
            // The file's time carries the order across restarts.
            File.SetLastWriteTimeUtc(path, now);
        }
        catch (IOException)
        {
        }
    }

    private void Remove(string name)
    {
        lock (_filesLock)
        {
            DeleteFile(name);
        }

        SignalChange();
    }

    private void SignalChange() => _changed.Signal();

    private void DeleteFile(string name)
    {
        if (_files.Remove(name, out var entry))
        {
            _totalBytes -= entry.Length;
        }

        try
        {
            File.Delete(Path.Combine(_directory, name));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogDeleteFailed(_logger, name, ex.Message);
        }
    }

    private void LoadIndex()
    {
        foreach (var path in Directory.EnumerateFiles(_directory))
        {
            var info = new FileInfo(path);
            if (info.Name.EndsWith(".tmp", StringComparison.Ordinal))
            {
                // Left by a process that died mid-write.
                TryDelete(path);
            }
            else if (info.Name.EndsWith(Extension, StringComparison.Ordinal))
            {
                _files[info.Name] = new FileEntry(info.Length, info.LastWriteTimeUtc);
                _totalBytes += info.Length;
            }
        }

        lock (_filesLock)
        {
            EnforceBudget(string.Empty);
        }

        LogOpened(_logger, _directory, _files.Count, _totalBytes, _maxBytes);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }

    private readonly record struct WriteItem(SavedKvState? State, TaskCompletionSource? Barrier);

    private readonly record struct FileEntry(long Length, DateTime LastUsed);

    [LoggerMessage(Level = LogLevel.Information, Message = "KV cache on disk: {Directory}, {Files} states, {Bytes} of {MaxBytes} bytes")]
    private static partial void LogOpened(ILogger logger, string directory, int files, long bytes, long maxBytes);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Saved the KV state of session {SessionKey}: {Tokens} tokens, {Bytes} bytes")]
    private static partial void LogSaved(ILogger logger, string sessionKey, int tokens, long bytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "KV state of session {SessionKey} not saved: the write queue is full")]
    private static partial void LogQueueFull(ILogger logger, string sessionKey);

    [LoggerMessage(Level = LogLevel.Warning, Message = "KV state of session {SessionKey} not saved: {Bytes} bytes exceed the cache's {MaxBytes} bytes")]
    private static partial void LogTooLarge(ILogger logger, string sessionKey, long bytes, long maxBytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "KV state of session {SessionKey} at {Path} not used ({Problem}); the session is prefilled instead")]
    private static partial void LogUnreadable(ILogger logger, string sessionKey, string path, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Writing the KV state of session {SessionKey} failed")]
    private static partial void LogWriteFailed(ILogger logger, string sessionKey, Exception exception);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Deleted KV state {File} (least recently used): {Bytes} bytes left of {MaxBytes}")]
    private static partial void LogEvictedFromDisk(ILogger logger, string file, long bytes, long maxBytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Deleting KV state {File} failed: {Problem}")]
    private static partial void LogDeleteFailed(ILogger logger, string file, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The KV cache writer for {Directory} did not finish within 30 s")]
    private static partial void LogWriterStuck(ILogger logger, string directory);
}

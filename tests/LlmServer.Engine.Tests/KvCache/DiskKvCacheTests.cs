using LlmServer.Engine.KvCache;
using LlmServer.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmServer.Engine.Tests.KvCache;

public sealed class DiskKvCacheTests : IDisposable
{
    private static readonly UInt128 s_model = new(1, 2);

    // Only against a hang: a write that fails never signals a change.
    private static readonly TimeSpan s_hangGuard = TimeSpan.FromMinutes(5);
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "llmserver-kv-" + Guid.NewGuid().ToString("N"));
    private readonly ManualTime _time = new();

    [Fact]
    public async Task A_saved_state_comes_back_from_disk_after_a_restart()
    {
        var saved = State("s1", [1, 2, 3], 100);
        using (var cache = Open())
        {
            Assert.True(cache.Save(saved));

            // Queued states are visible before they reach the disk.
            Assert.Same(saved, cache.TryLoad("s1"));
            await cache.FlushAsync();
            Assert.Single(Directory.GetFiles(_directory, "*.kv"));
        }

        using var restarted = Open();
        var loaded = restarted.TryLoad("s1");
        Assert.NotNull(loaded);
        Assert.Equal(saved.Tokens, loaded.Tokens);
        Assert.Equal(saved.State, loaded.State);
        Assert.Null(restarted.TryLoad("other"));
    }

    [Fact]
    public async Task NextChange_completes_when_a_state_reaches_the_disk_and_when_it_is_deleted()
    {
        using var cache = Open();
        var written = cache.NextChange;
        Assert.False(written.IsCompleted);

        cache.Save(State("s1", [1, 2, 3], 100));
        await written.WaitAsync(s_hangGuard);
        Assert.Single(Directory.GetFiles(_directory, "*.kv"));

        var deleted = cache.NextChange;
        Assert.False(deleted.IsCompleted);
        cache.Delete("s1");
        Assert.True(deleted.IsCompleted);
        Assert.Empty(Directory.GetFiles(_directory, "*.kv"));
    }

    [Fact]
    public async Task A_corrupt_file_is_a_miss_and_is_deleted()
    {
        using (var cache = Open())
        {
            cache.Save(State("s1", [1, 2, 3], 100));
            await cache.FlushAsync();
        }

        var file = Assert.Single(Directory.GetFiles(_directory, "*.kv"));
        var bytes = File.ReadAllBytes(file);
        bytes[bytes.Length / 2] ^= 0x5a;
        File.WriteAllBytes(file, bytes);

        using var reopened = Open();
        Assert.Null(reopened.TryLoad("s1"));
        Assert.Empty(Directory.GetFiles(_directory, "*.kv"));
    }

    [Fact]
    public async Task A_truncated_file_is_a_miss()
    {
        using (var cache = Open())
        {
            cache.Save(State("s1", [1, 2, 3], 100));
            await cache.FlushAsync();
        }

        var file = Assert.Single(Directory.GetFiles(_directory, "*.kv"));
        File.WriteAllBytes(file, File.ReadAllBytes(file)[..40]);
        using var reopened = Open();
        Assert.Null(reopened.TryLoad("s1"));
    }

    [Fact]
    public async Task Another_models_state_is_never_restored()
    {
        using (var cache = Open())
        {
            cache.Save(State("s1", [1, 2, 3], 100));
            await cache.FlushAsync();
        }

        var bytes = File.ReadAllBytes(Assert.Single(Directory.GetFiles(_directory, "*.kv")));
        Assert.Null(KvStateFile.TryRead(bytes, "s1", new UInt128(1, 3), out var problem));
        Assert.Contains("another model", problem, StringComparison.Ordinal);
        Assert.NotNull(KvStateFile.TryRead(bytes, "s1", s_model, out _));

        // Another model looks under its own file name.
        using (var other = Open(new UInt128(9, 3)))
        {
            Assert.Null(other.TryLoad("s1"));
        }

        // A model whose file name prefix is the same (the identity's upper half) is refused by the header.
        using var colliding = Open(new UInt128(1, 3));
        Assert.Null(colliding.TryLoad("s1"));
    }

    [Fact]
    public async Task The_byte_budget_deletes_the_least_recently_used_states()
    {
        // Each file is about 1 KB; the budget holds two.
        using var cache = Open(maxBytes: 2600);
        cache.Save(State("old", [1], 1000));
        await cache.FlushAsync();
        _time.Advance(TimeSpan.FromMinutes(1));
        cache.Save(State("used", [2], 1000));
        await cache.FlushAsync();
        _time.Advance(TimeSpan.FromMinutes(1));

        // Reading "old" makes it the most recently used: "used" is now the oldest.
        Assert.NotNull(cache.TryLoad("old"));
        _time.Advance(TimeSpan.FromMinutes(1));
        cache.Save(State("new", [3], 1000));
        await cache.FlushAsync();

        Assert.NotNull(cache.TryLoad("old"));
        Assert.NotNull(cache.TryLoad("new"));
        Assert.Null(cache.TryLoad("used"));
        Assert.Equal(2, Directory.GetFiles(_directory, "*.kv").Length);
        Assert.True(cache.TotalBytes <= 2600);
    }

    [Fact]
    public async Task The_budget_holds_across_restarts_in_file_time_order()
    {
        using (var cache = Open())
        {
            cache.Save(State("a", [1], 1000));
            await cache.FlushAsync();
            _time.Advance(TimeSpan.FromMinutes(1));
            cache.Save(State("b", [2], 1000));
            await cache.FlushAsync();
        }

        using var smaller = Open(maxBytes: 1500);
        Assert.Null(smaller.TryLoad("a"));
        Assert.NotNull(smaller.TryLoad("b"));
    }

    [Fact]
    public async Task A_state_larger_than_the_budget_is_not_saved()
    {
        using var cache = Open(maxBytes: 500);
        Assert.False(cache.Save(State("big", [1], 1000)));
        await cache.FlushAsync();
        Assert.Null(cache.TryLoad("big"));
    }

    [Fact]
    public async Task Deleting_a_session_removes_its_state_queued_or_written()
    {
        using var cache = Open();
        cache.Save(State("s1", [1], 10));
        await cache.FlushAsync();
        cache.Delete("s1");
        Assert.Null(cache.TryLoad("s1"));
        Assert.Empty(Directory.GetFiles(_directory, "*.kv"));
    }

    [Fact]
    public async Task A_newer_save_replaces_the_older_and_no_temporary_file_is_left()
    {
        using var cache = Open();
        cache.Save(State("s1", [1], 10));
        cache.Save(State("s1", [1, 2], 20));
        await cache.FlushAsync();
        Assert.Equal([1, 2], cache.TryLoad("s1")!.Tokens);
        Assert.Single(Directory.GetFiles(_directory));
    }

    [Fact]
    public async Task A_failed_write_warns_once_ends_as_failed_and_its_read_is_a_plain_miss()
    {
        var logger = new WarningCounter();
        using var cache = new DiskKvCache(new KvCacheOptions { KvCacheDirectory = _directory, KvCacheMaxBytes = 1 << 20 }, s_model, _time, logger);
        var ended = new List<bool>();
        cache.WriteEnded += written =>
        {
            lock (ended)
            {
                ended.Add(written);
            }
        };

        // The folder vanishes under the running server: the write fails and the next read finds nothing.
        Directory.Delete(_directory, recursive: true);
        Assert.True(cache.Save(State("s1", [1, 2, 3], 100)));
        await cache.FlushAsync();
        Assert.Null(cache.TryLoad("s1"));
        Assert.Equal(1, logger.Warnings);

        Directory.CreateDirectory(_directory);
        Assert.True(cache.Save(State("s2", [4, 5], 100)));
        await cache.FlushAsync();
        Assert.NotNull(cache.TryLoad("s2"));
        lock (ended)
        {
            Assert.Equal([false, true], ended);
        }

        Assert.Equal(1, logger.Warnings);
    }

    [Fact]
    public void A_stale_temporary_file_from_a_crash_is_removed_at_start()
    {
        Directory.CreateDirectory(_directory);
        File.WriteAllBytes(Path.Combine(_directory, "x.kv.123.tmp"), [1, 2, 3]);
        using var cache = Open();
        Assert.Empty(Directory.GetFiles(_directory));
    }

    [Fact]
    public void Model_identity_follows_the_file_content_and_cache_type()
    {
        var path = TestModels.Stories260K;
        var copy = Path.Combine(_directory, "copy.gguf");
        Directory.CreateDirectory(_directory);
        File.Copy(path, copy);
        Assert.Equal(ModelIdentity.Compute(path, "f16"), ModelIdentity.Compute(copy, "f16"));
        Assert.NotEqual(ModelIdentity.Compute(path, "f16"), ModelIdentity.Compute(path, "q8_0"));
        Assert.NotEqual(ModelIdentity.Compute(path, "f16"), ModelIdentity.Compute(TestModels.TinyRandomLlama2, "f16"));
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private DiskKvCache Open(UInt128? model = null, long maxBytes = 1 << 20) =>
        new(new KvCacheOptions { KvCacheDirectory = _directory, KvCacheMaxBytes = maxBytes }, model ?? s_model, _time, NullLogger.Instance);

    private static SavedKvState State(string key, int[] tokens, int bytes) =>
        new(key, tokens, Enumerable.Range(0, bytes).Select(i => (byte)(i * 7)).ToArray());

    private sealed class WarningCounter : ILogger
    {
        private int _warnings;

        public int Warnings => Volatile.Read(ref _warnings);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Warning)
            {
                Interlocked.Increment(ref _warnings);
            }
        }
    }

    private sealed class ManualTime : TimeProvider
    {
        private DateTimeOffset _now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }
}

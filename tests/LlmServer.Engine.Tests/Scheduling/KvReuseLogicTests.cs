using LlmServer.Engine.Generation;
using LlmServer.Engine.KvCache;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>Warm window slides and the disk KV cache, on the fake backend (one character per token).</summary>
public sealed class KvReuseLogicTests : IDisposable
{
    // The system prompt, a turn the window will drop, and the turn it keeps. The fake continues 'B' with "abc...".
    private const string System = "SSSSSSSSSS";
    private const string Dropped = "AAAAAAAAAAAA";
    private const string Kept = "BBBBBBBBBBBB";

    private static readonly Action<SchedulerOptions> WarmSlide = options => options.WarmSlide = true;

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "llmserver-kvlogic-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task A_slid_window_moves_the_kept_cells_and_prefills_only_the_new_suffix()
    {
        using var harness = new SchedulerHarness(slots: 1, slotContext: 128, budget: 64, configure: WarmSlide);
        await RunAsync(harness, System + Dropped + Kept, "s");

        // The KV now holds the prompt and the generated "abc" (the last sampled token is not decoded).
        var slid = System + Kept + "abc" + "CCCCC";
        var usage = await RunAsync(harness, slid, "s");

        Assert.Equal(System.Length + Kept.Length + 3, usage.CachedPromptTokens);
        Assert.Equal([(0, System.Length, System.Length + Dropped.Length)], harness.Backend.Shifts);

        // Only the new suffix went into a batch, at positions continuing the moved cells.
        var prefilled = harness.Backend.Batches[^5..].SelectMany(b => b).Where(e => e.Token == 'C').ToList();
        Assert.Equal(5, prefilled.Count);
        Assert.Equal(System.Length + Kept.Length + 3, prefilled[0].Position);
        Assert.StartsWith(slid, new string(harness.Backend.KvOf(0).Select(t => (char)t).ToArray()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task By_default_a_slid_window_prefills_the_kept_turn_again_at_the_positions_a_fresh_prefill_gives_it()
    {
        using var harness = new SchedulerHarness(slots: 1, slotContext: 128, budget: 64);
        await RunAsync(harness, System + Dropped + Kept, "s");
        var firstTurn = harness.Backend.Batches.Count;

        var slid = System + Kept + "abc" + "CCCCC";
        var usage = await RunAsync(harness, slid, "s");

        // Only the system prompt's cells stay; nothing moves, the kept turn and what follows are prefilled in order.
        Assert.Equal(System.Length, usage.CachedPromptTokens);
        Assert.Empty(harness.Backend.Shifts);
        var prefilled = harness.Backend.Batches.Skip(firstTurn).SelectMany(b => b).Where(e => e.Position < slid.Length).ToList();
        Assert.Equal(slid[System.Length..], new string(prefilled.Select(e => (char)e.Token).ToArray()));
        Assert.Equal(Enumerable.Range(System.Length, slid.Length - System.Length), prefilled.Select(e => e.Position));
        Assert.StartsWith(slid, KvText(harness, 0), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_slides_prefill_goes_in_budget_sized_chunks_while_another_slot_generates_every_step()
    {
        using var harness = new SchedulerHarness(slots: 2, slotContext: 128, budget: 16);
        await RunAsync(harness, System + Dropped + Kept, "s");
        var sessionSlot = harness.Backend.KvOf(0).Count > 0 ? 0 : 1;
        var other = harness.Submit("xxxxxxxx", maxTokens: 80);
        harness.Steps(2);

        var slid = System + Kept + "abc" + "CCCCCCCCCCCC";
        var turn = harness.Submit(slid, maxTokens: 4, session: "s");
        var promptSteps = 0;
        do
        {
            Assert.True(harness.Scheduler.Step());
            var batch = harness.Backend.Batches[^1];
            Assert.InRange(batch.Count, 1, 16);
            Assert.Contains(batch, e => e.Slot != sessionSlot);
            promptSteps += batch.Any(e => e.Slot == sessionSlot) ? 1 : 0;
            Assert.True(promptSteps < 20, "the slide's prefill did not finish");
        }
        while (harness.Backend.KvOf(sessionSlot).Count < slid.Length);

        // 27 tokens past the system prompt, at most 15 a step beside the other slot's token.
        Assert.True(promptSteps >= 2, $"the slide's prefill took {promptSteps} steps");
        harness.RunToIdle();
        var completed = Assert.Single((await SchedulerHarness.ReadAvailableAsync(turn)).OfType<GenerationCompleted>());
        Assert.Equal(System.Length, completed.Usage.CachedPromptTokens);
        Assert.Equal(80, Assert.Single((await SchedulerHarness.ReadAvailableAsync(other)).OfType<GenerationCompleted>()).Usage.CompletionTokens);
    }

    [Fact]
    public async Task Cancelling_a_slides_prefill_frees_the_slot_and_the_session_keeps_only_cells_it_can_use()
    {
        using var harness = new SchedulerHarness(slots: 1, slotContext: 128, budget: 16);
        await RunAsync(harness, System + Dropped + Kept, "s");

        var slid = System + Kept + "abc" + "CCCCCCCCCCCC";
        var turn = harness.Submit(slid, maxTokens: 4, session: "s");
        Assert.True(harness.Scheduler.Step());
        Assert.InRange(harness.Backend.KvOf(0).Count, System.Length + 1, slid.Length - 1);
        turn.Cancel();
        harness.RunToIdle();

        var cancelled = Assert.Single((await SchedulerHarness.ReadAvailableAsync(turn)).OfType<GenerationCompleted>());
        Assert.Equal(FinishReason.Cancelled, cancelled.FinishReason);
        Assert.Equal(0, harness.Scheduler.GetStatus().Running);
        Assert.StartsWith(KvText(harness, 0), slid, StringComparison.Ordinal);

        // The slot is free for the session's next turn, which reuses exactly the cells prefilled before the cancel.
        var partial = harness.Backend.KvOf(0).Count;
        var usage = await RunAsync(harness, slid, "s");
        Assert.Equal(partial, usage.CachedPromptTokens);
        Assert.StartsWith(slid, KvText(harness, 0), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_shifting_the_slide_prefills_from_the_first_difference()
    {
        using var harness = new SchedulerHarness(slots: 1, slotContext: 128, budget: 64, canShift: false, configure: WarmSlide);
        await RunAsync(harness, System + Dropped + Kept, "s");
        var usage = await RunAsync(harness, System + Kept + "abc" + "CCCCC", "s");

        Assert.Equal(System.Length, usage.CachedPromptTokens);
        Assert.Empty(harness.Backend.Shifts);
    }

    [Fact]
    public async Task A_request_without_a_session_never_shifts()
    {
        using var harness = new SchedulerHarness(slots: 1, slotContext: 128, budget: 64, configure: WarmSlide);
        await RunAsync(harness, System + Dropped + Kept, null);
        var usage = await RunAsync(harness, System + Kept + "abc" + "CCCCC", null);

        Assert.Equal(System.Length, usage.CachedPromptTokens);
        Assert.Empty(harness.Backend.Shifts);
    }

    [Fact]
    public void The_plan_needs_enough_kept_tokens_and_keeps_the_last_prompt_token_for_decoding()
    {
        int[] cached = [1, 2, 3, 9, 9, 4, 5, 6, 7, 8, 10, 11, 12];
        Assert.Equal(new SlidePlan(3, 5, 8), SlotTable.Plan(cached, [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13], canShift: true));

        // The whole prompt is cached: the last token is still decoded, so one fewer is kept.
        Assert.Equal(new SlidePlan(3, 5, 8), SlotTable.Plan(cached, [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 99], canShift: true));
        Assert.Equal(new SlidePlan(3, 0, 0), SlotTable.Plan(cached, [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12], canShift: true));
        Assert.Equal(new SlidePlan(3, 0, 0), SlotTable.Plan(cached, [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13], canShift: false));
        Assert.Equal(new SlidePlan(3, 0, 0), SlotTable.Plan(cached, [1, 2, 3, 4, 5, 6, 99], canShift: true));
    }

    [Fact]
    public async Task An_evicted_session_is_restored_from_disk_on_its_next_turn()
    {
        using var cache = OpenCache();
        using var harness = new SchedulerHarness(slots: 1, slotContext: 128, budget: 64, diskCache: cache);
        var first = System + Dropped;
        await RunAsync(harness, first, "a");
        var resident = harness.Backend.KvOf(0).Count;
        Assert.Equal(0, harness.Backend.Saves);

        // Session b takes the only slot: a's state goes to disk.
        await RunAsync(harness, "bbbbbbbbbbbbbbbbbbbb", "b");
        Assert.Equal(1, harness.Backend.Saves);

        var next = first + "abc" + "CCCC";
        var usage = await RunAsync(harness, next, "a");
        Assert.Equal(resident, usage.CachedPromptTokens);
        Assert.Equal(2, harness.Backend.Saves);
    }

    [Fact]
    public async Task A_restored_session_whose_window_slid_shifts_after_the_restore()
    {
        using var cache = OpenCache();
        using var harness = new SchedulerHarness(slots: 1, slotContext: 128, budget: 64, diskCache: cache, configure: WarmSlide);
        await RunAsync(harness, System + Dropped + Kept, "a");
        await RunAsync(harness, "bbbbbbbbbbbbbbbbbbbb", "b");

        var usage = await RunAsync(harness, System + Kept + "abc" + "CCCCC", "a");
        Assert.Equal(System.Length + Kept.Length + 3, usage.CachedPromptTokens);
        Assert.Single(harness.Backend.Shifts);
    }

    [Fact]
    public async Task Saved_states_survive_a_new_scheduler_on_the_same_folder()
    {
        int resident;
        using (var cache = OpenCache())
        using (var harness = new SchedulerHarness(slots: 1, slotContext: 128, budget: 64, diskCache: cache))
        {
            await RunAsync(harness, System + Dropped, "a");
            resident = harness.Backend.KvOf(0).Count;
            await RunAsync(harness, "bbbbbbbbbbbbbbbbbbbb", "b");
            await cache.FlushAsync();
        }

        using var reopened = OpenCache();
        using var restarted = new SchedulerHarness(slots: 1, slotContext: 128, budget: 64, diskCache: reopened);
        var usage = await RunAsync(restarted, System + Dropped + "abc" + "CCCC", "a");
        Assert.Equal(resident, usage.CachedPromptTokens);
    }

    [Fact]
    public async Task A_corrupt_or_foreign_state_is_prefilled_without_an_error()
    {
        using (var cache = OpenCache())
        using (var harness = new SchedulerHarness(slots: 1, slotContext: 128, budget: 64, diskCache: cache))
        {
            await RunAsync(harness, System + Dropped, "a");
            await RunAsync(harness, "bbbbbbbbbbbbbbbbbbbb", "b");
            await cache.FlushAsync();
        }

        // Another model's cache finds nothing for a.
        using (var foreign = OpenCache(new UInt128(7, 7)))
        using (var harness = new SchedulerHarness(slots: 1, slotContext: 128, budget: 64, diskCache: foreign))
        {
            var usage = await RunAsync(harness, System + Dropped + "abc" + "CCCC", "a");
            Assert.Equal(0, usage.CachedPromptTokens);
        }

        foreach (var file in Directory.GetFiles(_directory, "*.kv"))
        {
            var bytes = File.ReadAllBytes(file);
            bytes[^20] ^= 0xff;
            File.WriteAllBytes(file, bytes);
        }

        using var reopened = OpenCache();
        using var restarted = new SchedulerHarness(slots: 1, slotContext: 128, budget: 64, diskCache: reopened);
        var prefilled = await RunAsync(restarted, System + Dropped + "abc" + "CCCC", "a");
        Assert.Equal(0, prefilled.CachedPromptTokens);
    }

    [Fact]
    public async Task State_the_context_refuses_is_prefilled_and_the_slot_left_clean()
    {
        using var cache = OpenCache();
        cache.Save(new SavedKvState("a", [.. (System + Dropped).Select(c => (int)c)], [1, 2, 3, 4, 5]));
        using var harness = new SchedulerHarness(slots: 1, slotContext: 128, budget: 64, diskCache: cache);
        var usage = await RunAsync(harness, System + Dropped + "CCCC", "a");
        Assert.Equal(0, usage.CachedPromptTokens);
        Assert.StartsWith(System + Dropped + "CCCC", new string(harness.Backend.KvOf(0).Select(t => (char)t).ToArray()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Deleting_a_session_deletes_its_saved_state()
    {
        using var cache = OpenCache();
        using var harness = new SchedulerHarness(slots: 1, slotContext: 128, budget: 64, diskCache: cache);
        await RunAsync(harness, System + Dropped, "a");
        await RunAsync(harness, "bbbbbbbbbbbbbbbbbbbb", "b");
        harness.Scheduler.EvictSession("a");
        harness.RunToIdle();
        Assert.Null(cache.TryLoad("a"));
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public async Task Asked_for_the_admission_is_the_first_event_and_states_the_final_cached_prefix()
    {
        using var harness = new SchedulerHarness(slots: 1, slotContext: 128, budget: 64);
        await RunAsync(harness, System + Dropped, null);

        var prompt = System + Dropped + "CCCC";
        var stream = harness.Scheduler.Submit(
            new GenerationRequest { Prompt = prompt, MaxTokens = 4, ReportAdmission = true },
            harness.Backend.Vocabulary.Tokenize(prompt, false, false),
            CancellationToken.None);
        harness.RunToIdle();
        var events = await SchedulerHarness.ReadAvailableAsync(stream);

        var admitted = Assert.IsType<RequestAdmitted>(events[0]);
        var usage = Assert.Single(events.OfType<GenerationCompleted>()).Usage;
        Assert.Single(events.OfType<RequestAdmitted>());
        Assert.Equal(System.Length + Dropped.Length, admitted.CachedPromptTokens);
        Assert.Equal((usage.PromptTokens, usage.CachedPromptTokens), (admitted.PromptTokens, admitted.CachedPromptTokens));

        // Not asked: no such event (the other front ends' streams are unchanged).
        var unasked = harness.Submit(prompt);
        harness.RunToIdle();
        Assert.Empty((await SchedulerHarness.ReadAvailableAsync(unasked)).OfType<RequestAdmitted>());
    }

    private static string KvText(SchedulerHarness harness, int slot) => new([.. harness.Backend.KvOf(slot).Select(t => (char)t)]);

    private DiskKvCache OpenCache(UInt128? model = null) =>
        new(new KvCacheOptions { KvCacheDirectory = _directory }, model ?? new UInt128(1, 1), TimeProvider.System, NullLogger.Instance);

    private static async Task<GenerationUsage> RunAsync(SchedulerHarness harness, string prompt, string? session)
    {
        var stream = harness.Submit(prompt, maxTokens: 4, session: session);
        harness.RunToIdle();
        var events = await SchedulerHarness.ReadAvailableAsync(stream);
        var completed = Assert.Single(events.OfType<GenerationCompleted>());
        Assert.Null(completed.Error);
        return completed.Usage;
    }
}

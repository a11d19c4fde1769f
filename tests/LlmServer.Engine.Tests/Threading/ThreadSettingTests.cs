using System.ComponentModel;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.Models;
using LlmServer.Engine.Threading;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.Threading;

public sealed class ThreadSettingTests
{
    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("auto")]
    [InlineData(" AUTO ")]
    [InlineData("0")]
    public void Auto_empty_and_zero_mean_the_engine_chooses(string? text)
    {
        var setting = ThreadSetting.Parse(text);
        Assert.True(setting.IsAuto);
        Assert.Equal("auto", setting.ToString());
    }

    [Fact]
    public void A_number_is_kept_as_configured()
    {
        var setting = (ThreadSetting)TypeDescriptor.GetConverter(typeof(ThreadSetting)).ConvertFrom("3")!;
        Assert.False(setting.IsAuto);
        Assert.Equal(3, setting.Count);
        Assert.Equal(setting, (ThreadSetting)3);
    }

    [Theory]
    [InlineData("many")]
    [InlineData("-1")]
    [InlineData("2.5")]
    [InlineData("100000")]
    public void Other_text_binds_without_throwing_and_the_validator_refuses_it_at_start(string text)
    {
        // The configuration binder converts through the type's converter; a bad value must reach the validator.
        var setting = (ThreadSetting)TypeDescriptor.GetConverter(typeof(ThreadSetting)).ConvertFrom(text)!;
        Assert.Equal(text, setting.Invalid);

        var options = new ModelOptions { Path = TestModels.Stories260K, Threads = setting, BatchThreads = setting };
        var result = new ModelOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Contains(result.Failures!, f => f.StartsWith($"Model:Threads '{text}' must be 'auto'", StringComparison.Ordinal));
        Assert.Contains(result.Failures!, f => f.StartsWith($"Model:BatchThreads '{text}' must be 'auto'", StringComparison.Ordinal));
    }

    [Fact]
    public void Auto_and_numbers_pass_the_validator()
    {
        var options = new ModelOptions { Path = TestModels.Stories260K, Threads = ThreadSetting.Auto, BatchThreads = 2 };
        Assert.True(new ModelOptionsValidator().Validate(null, options).Succeeded);
    }
}

public sealed class CpuThreadPlannerTests
{
    private const long Synth110MBytes = 82L * 1024 * 1024;
    private const long Stories260KBytes = 1_185_376;

    [Fact]
    public void Auto_on_a_model_of_real_size_decodes_on_every_available_CPU_and_adapts()
    {
        var plan = CpuThreadPlanner.Resolve(ThreadSetting.Auto, ThreadSetting.Auto, processors: 2, Synth110MBytes, "GOMP_SPINCOUNT=1000 (set by the engine)");

        Assert.Equal(2, plan.Threads);
        Assert.Equal(2, plan.BatchThreads);
        Assert.True(plan.Adaptive);
        Assert.True(plan.BatchThreadsFollow);
        Assert.Equal(2, plan.CurrentThreads);
        Assert.Contains("one decode thread per available CPU (2)", plan.Reason, StringComparison.Ordinal);
        Assert.Contains("GOMP_SPINCOUNT=1000", plan.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Auto_on_a_tiny_model_decodes_on_one_thread_and_says_why()
    {
        var plan = CpuThreadPlanner.Resolve(ThreadSetting.Auto, ThreadSetting.Auto, processors: 2, Stories260KBytes, "OpenMP defaults");

        Assert.Equal(1, plan.Threads);
        Assert.Equal(2, plan.BatchThreads);
        Assert.False(plan.Adaptive);
        Assert.Contains("only add synchronisation", plan.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Explicit_counts_are_kept_and_never_adapted()
    {
        var plan = CpuThreadPlanner.Resolve(3, 5, processors: 2, Stories260KBytes, "OpenMP defaults");

        Assert.Equal(3, plan.Threads);
        Assert.Equal(5, plan.BatchThreads);
        Assert.False(plan.Adaptive);
        Assert.Equal("3", plan.ThreadsSetting);
        Assert.Equal("5", plan.BatchThreadsSetting);
    }

    [Fact]
    public void Explicit_batch_threads_do_not_follow_adaptive_decode_threads()
    {
        var plan = CpuThreadPlanner.Resolve(ThreadSetting.Auto, 2, processors: 4, Synth110MBytes, "OpenMP defaults");

        Assert.True(plan.Adaptive);
        Assert.Equal(4, plan.Threads);
        Assert.False(plan.BatchThreadsFollow);
    }
}

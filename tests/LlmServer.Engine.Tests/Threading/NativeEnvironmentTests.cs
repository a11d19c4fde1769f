using System.Runtime.InteropServices;
using LlmServer.Engine.Threading;

namespace LlmServer.Engine.Tests.Threading;

/// <summary>
/// Why the engine calls libc's setenv: on Linux the runtime keeps its own copy of the environment, so a variable set
/// through <see cref="Environment.SetEnvironmentVariable(string, string)"/> never reaches native getenv (which is
/// what libgomp reads when it loads).
/// </summary>
public sealed class NativeEnvironmentTests
{
    [Fact]
    public void Managed_SetEnvironmentVariable_does_not_reach_native_getenv_on_Linux()
    {
        Assert.True(OperatingSystem.IsLinux(), "The engine's native-environment handling is measured on Linux.");
        var name = "LLMSERVER_TEST_MANAGED_" + Guid.NewGuid().ToString("N");

        Environment.SetEnvironmentVariable(name, "managed");

        Assert.Equal("managed", Environment.GetEnvironmentVariable(name));
        Assert.Null(OpenMpEnvironment.GetNative(name));
    }

    [Fact]
    public void SetDefault_reaches_native_getenv_and_the_runtime_copy()
    {
        var name = "LLMSERVER_TEST_NATIVE_" + Guid.NewGuid().ToString("N");

        var (value, fromOperator) = OpenMpEnvironment.SetDefault(name, "1000");

        Assert.Equal(("1000", false), (value, fromOperator));
        Assert.Equal("1000", OpenMpEnvironment.GetNative(name));
        Assert.Equal("1000", Environment.GetEnvironmentVariable(name));
    }

    [Fact]
    public void A_value_already_in_the_native_environment_is_kept()
    {
        var name = "LLMSERVER_TEST_OPERATOR_" + Guid.NewGuid().ToString("N");
        OpenMpEnvironment.SetDefault(name, "passive");

        var (value, fromOperator) = OpenMpEnvironment.SetDefault(name, "1000");

        Assert.Equal(("passive", true), (value, fromOperator));
        Assert.Equal("passive", OpenMpEnvironment.GetNative(name));
    }

    [Fact]
    public void The_decoding_threads_CPU_clock_advances_with_work()
    {
        Assert.True(ThreadCpuClock.IsSupported);
        var before = ThreadCpuClock.Now();
        var sum = 0L;
        for (var i = 0; i < 1_000_000; i++)
        {
            sum += Marshal.SizeOf<long>() ^ i;
        }

        Assert.NotEqual(0, sum);
        Assert.True(ThreadCpuClock.Now() > before);
    }
}

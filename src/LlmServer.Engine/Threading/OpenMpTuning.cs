using System.Globalization;
using LLama.Native;

namespace LlmServer.Engine.Threading;

/// <summary>
/// libgomp's wait policy for llama.cpp's CPU threads. By default they spin for about 300,000 iterations at every
/// barrier before sleeping; when another process holds one of the cores, the spinning thread burns the time slice its
/// partner needs to reach the barrier, and a 0.5 ms token takes 50 to 250 ms. A short spin keeps the quiet-machine
/// speed (a barrier on an idle core is passed within the spin) and sleeps at once otherwise (measured: README
/// "CPU threads"). Applied once per process, before the native backend loads; an operator's own
/// <c>OMP_WAIT_POLICY</c> or <c>GOMP_SPINCOUNT</c> wins.
/// </summary>
internal static class OpenMpTuning
{
    public const string SpinCountVariable = "GOMP_SPINCOUNT";
    public const string WaitPolicyVariable = "OMP_WAIT_POLICY";
    public const int SpinCount = 1000;

    private static readonly Lock Gate = new();
    private static string? s_description;

    /// <summary>Sets the spin count unless the operator chose a policy or the backend has already loaded; says what is in force.</summary>
    public static string Apply()
    {
        lock (Gate)
        {
            return s_description ??= ApplyOnce();
        }
    }

    /// <summary>What <see cref="Apply"/> did, or what the environment says when it has not run.</summary>
    public static string Describe()
    {
        lock (Gate)
        {
            return s_description ?? FromEnvironment() ?? "OpenMP defaults";
        }
    }

    private static string ApplyOnce()
    {
        if (FromEnvironment() is { } operatorChoice)
        {
            return operatorChoice + " (from the environment)";
        }

        if (NativeLibraryConfig.LLama.LibraryHasLoaded)
        {
            return "OpenMP defaults (the native backend had loaded before the engine could set " + SpinCountVariable + ")";
        }

        var value = SpinCount.ToString(CultureInfo.InvariantCulture);
        OpenMpEnvironment.SetDefault(SpinCountVariable, value);
        return $"{SpinCountVariable}={value} (set by the engine)";
    }

    private static string? FromEnvironment()
    {
        var policy = OpenMpEnvironment.GetNative(WaitPolicyVariable);
        var spin = OpenMpEnvironment.GetNative(SpinCountVariable);
        var parts = new List<string>(2);
        if (!string.IsNullOrEmpty(policy))
        {
            parts.Add($"{WaitPolicyVariable}={policy}");
        }

        if (!string.IsNullOrEmpty(spin))
        {
            parts.Add($"{SpinCountVariable}={spin}");
        }

        return parts.Count == 0 ? null : string.Join(", ", parts);
    }
}

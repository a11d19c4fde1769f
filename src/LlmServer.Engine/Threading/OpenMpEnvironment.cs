using System.Runtime.InteropServices;

namespace LlmServer.Engine.Threading;

/// <summary>
/// Sets libgomp's variables in the native environment before the backend loads. On Linux, .NET's
/// <see cref="Environment.SetEnvironmentVariable(string, string)"/> changes only the runtime's own copy, which
/// native <c>getenv</c> never sees (measured; <c>NativeEnvironmentTests</c> keeps it checked), and libgomp reads its
/// variables once, when it loads; so the values go in through libc's <c>setenv</c>, and only until the native
/// backend has loaded. A variable the operator set stays as it is.
/// </summary>
internal static partial class OpenMpEnvironment
{
    /// <summary>Reads the native process environment (what libgomp will see).</summary>
    public static string? GetNative(string name)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            return Environment.GetEnvironmentVariable(name);
        }

        return Marshal.PtrToStringUTF8(GetEnv(name));
    }

    /// <summary>
    /// Sets <paramref name="name"/> in the native environment unless it is set already there; returns the value in
    /// force afterwards and whether it came from the operator.
    /// </summary>
    public static (string Value, bool FromOperator) SetDefault(string name, string value)
    {
        if (GetNative(name) is { Length: > 0 } existing)
        {
            return (existing, true);
        }

        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            if (SetEnv(name, value, 0) != 0)
            {
                throw new InvalidOperationException($"setenv({name}) failed with errno {Marshal.GetLastPInvokeError()}.");
            }
        }

        // The runtime's copy too, so that child processes and diagnostics see the same value.
        Environment.SetEnvironmentVariable(name, value);
        return (value, false);
    }

    [LibraryImport("libc", EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint GetEnv(string name);

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int SetEnv(string name, string value, int overwrite);
}

using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace LlmServer.Hosting;

/// <summary>
/// Why the server cannot start, said once on standard error without a stack trace: every invalid setting, a
/// missing model, a port another process holds. The process then exits with <see cref="ExitCode"/>.
/// </summary>
internal static class StartupProblems
{
    /// <summary>The exit code of a server that could not start (README, "Configuration").</summary>
    public const int ExitCode = 1;

    private const string WhereSettingsLive =
        "Settings come from appsettings.json, the environment (Section__Key=value) and the command line (--Section:Key=value).";

    /// <summary>
    /// Every failure of every options section validated at start. The host reads some options while it is built
    /// (the engine's, the lifetime's), which would stop at the first bad section, so this checks them all first on
    /// a provider of the same registrations that builds nothing else.
    /// </summary>
    public static IReadOnlyList<string> InvalidSettings(IServiceCollection services)
    {
        using var probe = services.BuildServiceProvider();
        try
        {
            probe.GetService<IStartupValidator>()?.Validate();
            return [];
        }
        catch (OptionsValidationException ex)
        {
            return [.. ex.Failures];
        }
        catch (AggregateException ex) when (ex.Flatten().InnerExceptions.All(e => e is OptionsValidationException))
        {
            return [.. ex.Flatten().InnerExceptions.Cast<OptionsValidationException>().SelectMany(e => e.Failures)];
        }
        catch (InvalidOperationException ex) when (IsUnreadableSetting(ex))
        {
            // The binder stops at the first value it cannot convert, before any validator runs.
            return [ex.Message];
        }
    }

    /// <summary>
    /// The configuration binder's failure for a value that is not of its setting's type (<c>--Scheduler:Slots=abc</c>):
    /// it names the value and the setting; the binder has no exception type of its own.
    /// </summary>
    public static bool IsUnreadableSetting(Exception exception) =>
        exception is InvalidOperationException && exception.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal);

    public static string DescribeInvalidSettings(IReadOnlyList<string> failures) =>
        $"The server cannot start: {(failures.Count == 1 ? "a setting is" : $"{failures.Count} settings are")} invalid.{Environment.NewLine}"
        + string.Concat(failures.Select(f => $"  - {f}{Environment.NewLine}"))
        + WhereSettingsLive;

    /// <summary>Kestrel's bind failure: another process listens on the address.</summary>
    public static bool IsAddressInUse(Exception exception) =>
        exception is IOException { InnerException: AddressInUseException } or AddressInUseException;

    public static string DescribeAddressInUse(Exception exception) =>
        $"The server cannot start: {exception.Message.TrimEnd('.')}. Another process listens there: stop it, or choose another address with --urls http://127.0.0.1:PORT.";

    /// <summary>
    /// The application's logger factory, without the host's own "Hosting failed to start" entry (its stack trace)
    /// for a port in use, which <see cref="ServerApplication.RunAsync"/> reports.
    /// </summary>
    public static void QuietenAddressInUse(IServiceCollection services) =>
        services.Replace(ServiceDescriptor.Singleton<ILoggerFactory>(sp => new QuietLoggerFactory(
            ActivatorUtilities.CreateInstance<LoggerFactory>(sp),
            (eventId, exception) => eventId.Name == "HostedServiceStartupFaulted" && exception is not null && IsAddressInUse(exception),
            ownsInner: true)));

    /// <summary>Writes <paramref name="message"/> where an operator looks (standard error) and returns <see cref="ExitCode"/>.</summary>
    public static int Report(string message)
    {
        Console.Error.WriteLine(message);
        return ExitCode;
    }
}

/// <summary>The server cannot start; the message says why, for an operator (no stack trace needed).</summary>
internal sealed class ServerCannotStartException : Exception
{
    public ServerCannotStartException(string message)
        : base(message)
    {
    }

    public ServerCannotStartException()
    {
    }

    public ServerCannotStartException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

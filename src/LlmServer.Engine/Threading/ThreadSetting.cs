using System.ComponentModel;
using System.Globalization;

namespace LlmServer.Engine.Threading;

/// <summary>
/// A thread count from configuration: <c>auto</c> (the default; also <c>0</c>) lets the engine choose and adapt,
/// a whole number fixes it. Text that is neither is kept as <see cref="Invalid"/> so that the options validator
/// reports it at start with every other problem, instead of the binder throwing on the first one.
/// </summary>
[TypeConverter(typeof(ThreadSettingConverter))]
public readonly record struct ThreadSetting
{
    public const int MaxThreads = 1024;

    private ThreadSetting(int count, string? invalid)
    {
        Count = count;
        Invalid = invalid;
    }

    /// <summary>The engine chooses.</summary>
    public static ThreadSetting Auto => default;

    /// <summary>The configured number of threads; 0 when automatic or invalid.</summary>
    public int Count { get; }

    /// <summary>The configured text when it is neither <c>auto</c> nor a number of threads.</summary>
    public string? Invalid { get; }

    public bool IsAuto => Count == 0 && Invalid is null;

    public static ThreadSetting Parse(string? text)
    {
        var trimmed = text?.Trim();
        if (string.IsNullOrEmpty(trimmed) || trimmed.Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            return Auto;
        }

        return int.TryParse(trimmed, NumberStyles.Integer, CultureInfo.InvariantCulture, out var count)
            ? FromCount(count, trimmed)
            : new ThreadSetting(0, trimmed);
    }

    public static implicit operator ThreadSetting(int count) => FromCount(count, count.ToString(CultureInfo.InvariantCulture));

    public override string ToString() => Invalid ?? (IsAuto ? "auto" : Count.ToString(CultureInfo.InvariantCulture));

    private static ThreadSetting FromCount(int count, string text) => count switch
    {
        0 => Auto,
        > 0 and <= MaxThreads => new ThreadSetting(count, null),
        _ => new ThreadSetting(0, text),
    };
}

/// <summary>Binds <see cref="ThreadSetting"/> from configuration text; never throws (the validator reports bad text).</summary>
internal sealed class ThreadSettingConverter : TypeConverter
{
    public override bool CanConvertFrom(ITypeDescriptorContext? context, Type sourceType) =>
        sourceType == typeof(string) || sourceType == typeof(int) || base.CanConvertFrom(context, sourceType);

    public override object? ConvertFrom(ITypeDescriptorContext? context, CultureInfo? culture, object value) => value switch
    {
        string text => ThreadSetting.Parse(text),
        int count => (ThreadSetting)count,
        _ => base.ConvertFrom(context, culture, value),
    };

    public override bool CanConvertTo(ITypeDescriptorContext? context, Type? destinationType) =>
        destinationType == typeof(string) || base.CanConvertTo(context, destinationType);

    public override object? ConvertTo(ITypeDescriptorContext? context, CultureInfo? culture, object? value, Type destinationType) =>
        destinationType == typeof(string) && value is ThreadSetting setting ? setting.ToString() : base.ConvertTo(context, culture, value, destinationType);
}

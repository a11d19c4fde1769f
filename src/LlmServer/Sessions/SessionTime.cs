using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace LlmServer.Sessions;

/// <summary>
/// The sessions' timestamps: UTC, to the millisecond, the precision the stores keep (Unix milliseconds). A time is
/// cut to the millisecond when it is taken, so what a call returns at once is what a later read of the store
/// returns; on the wire it is ISO 8601 with exactly three fractional digits and <c>Z</c>.
/// </summary>
internal static class SessionTime
{
    public static DateTimeOffset Now(TimeProvider time) => FromUnixMilliseconds(time.GetUtcNow().ToUnixTimeMilliseconds());

    public static DateTimeOffset FromUnixMilliseconds(long milliseconds) => DateTimeOffset.FromUnixTimeMilliseconds(milliseconds);
}

/// <summary>Writes a session timestamp as <c>2026-01-02T03:04:05.678Z</c> (<see cref="SessionTime"/>); reads any ISO 8601 time.</summary>
public sealed class SessionTimestampConverter : JsonConverter<DateTimeOffset>
{
    public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetDateTimeOffset();

    public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
}

using System.Globalization;

namespace LlmServer.Tests.Operations;

/// <summary>Reads samples out of a Prometheus text exposition.</summary>
internal static class PrometheusText
{
    /// <summary>Every sample line as (metric name, labels text, value).</summary>
    public static IEnumerable<(string Name, string Labels, double Value)> Samples(string exposition)
    {
        foreach (var raw in exposition.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var brace = line.IndexOf('{');
            var space = line.IndexOf(' ');
            string name, labels, rest;
            if (brace >= 0 && (space < 0 || brace < space))
            {
                var close = line.LastIndexOf('}');
                name = line[..brace];
                labels = line[(brace + 1)..close];
                rest = line[(close + 1)..].Trim();
            }
            else
            {
                name = line[..space];
                labels = string.Empty;
                rest = line[(space + 1)..].Trim();
            }

            var valueText = rest.Split(' ')[0];
            yield return (name, labels, double.Parse(valueText, NumberStyles.Float, CultureInfo.InvariantCulture));
        }
    }

    /// <summary>The sum of a metric's samples whose labels contain <paramref name="labelFilter"/> (0 when absent).</summary>
    public static double Sum(string exposition, string name, string? labelFilter = null) =>
        Samples(exposition).Where(s => s.Name == name && (labelFilter is null || s.Labels.Contains(labelFilter, StringComparison.Ordinal))).Sum(s => s.Value);

    public static bool Has(string exposition, string name) => Samples(exposition).Any(s => s.Name == name);
}

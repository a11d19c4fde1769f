using LlmServer.Router.Configuration;
using LlmServer.Router.Routing;

namespace LlmServer.Router.Tests;

public sealed class SessionReplicaMapTests
{
    [Fact]
    public void The_least_recently_used_session_is_forgotten_first()
    {
        var map = new SessionReplicaMap(capacity: 2);
        map.Remember("a", "r1");
        map.Remember("b", "r2");
        Assert.Equal("r1", map.Find("a"));
        map.Remember("c", "r1");
        Assert.Null(map.Find("b"));
        Assert.Equal("r1", map.Find("a"));
        Assert.Equal("r1", map.Find("c"));
        map.Remember("a", "r2");
        Assert.Equal("r2", map.Find("a"));
        Assert.Equal(2, map.Count);
    }

    [Fact]
    public void Every_bad_setting_is_reported_at_once()
    {
        var options = new RouterOptions { LoadFactor = 0.5, HealthCheckInterval = TimeSpan.Zero, SessionMapCapacity = 0, SessionListTimeout = TimeSpan.Zero, SessionListMaxBytes = 0 };
        options.Replicas.Add("not a url");
        options.Replicas.Add("ftp://127.0.0.1:1");
        var result = new RouterOptionsValidator().Validate(null, options);
        Assert.True(result.Failed);
        var failures = result.Failures!.ToArray();
        Assert.Equal(7, failures.Length);
        Assert.Contains(failures, f => f.Contains("Router:Replicas:0", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("Router:Replicas:1", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("LoadFactor", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("HealthCheckInterval", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("SessionMapCapacity", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("SessionListTimeout", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("SessionListMaxBytes", StringComparison.Ordinal));
    }
}

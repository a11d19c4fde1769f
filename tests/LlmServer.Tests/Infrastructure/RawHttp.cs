using System.Net.Sockets;
using System.Text;

namespace LlmServer.Tests.Infrastructure;

/// <summary>Requests written to one HTTP/1.1 connection as bytes, for what HttpClient hides (a HEAD's body).</summary>
internal static class RawHttp
{
    /// <summary>
    /// Sends a HEAD of <paramref name="headPath"/> and then a GET of <paramref name="nextPath"/> on one connection and
    /// returns all it reads until the server closes it: a HEAD answered without a body is followed at once by the
    /// GET's status line, and a HEAD still being answered holds the GET back.
    /// </summary>
    public static async Task<(string HeadHeaders, string Following)> HeadThenGetAsync(Uri server, string headPath, string nextPath, CancellationToken cancellationToken)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(server.Host, server.Port, cancellationToken);
        await using var stream = tcp.GetStream();
        var requests = $"HEAD {headPath} HTTP/1.1\r\nHost: {server.Authority}\r\n\r\nGET {nextPath} HTTP/1.1\r\nHost: {server.Authority}\r\nConnection: close\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(requests), cancellationToken);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var all = await reader.ReadToEndAsync(cancellationToken);
        var end = all.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        Assert.True(end > 0, $"no complete header block in:\n{all}");
        return (all[..(end + 4)], all[(end + 4)..]);
    }
}

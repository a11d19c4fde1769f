using System.Net;
using System.Net.Sockets;

namespace LlmServer.Testing;

/// <summary>
/// A loopback address where nothing listens, for as long as this is held: a socket bound there and never listening,
/// so a connection is refused at once, and the kernel gives the port to no other socket of a busy run (neither a
/// server binding port 0 nor an outgoing connection), which a port merely found free and let go could be.
/// </summary>
internal sealed class ClosedPort : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

    public ClosedPort()
    {
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        Address = $"http://127.0.0.1:{((IPEndPoint)_socket.LocalEndPoint!).Port}";
    }

    /// <summary>The address, <c>http://127.0.0.1:PORT</c>.</summary>
    public string Address { get; }

    public void Dispose() => _socket.Dispose();
}

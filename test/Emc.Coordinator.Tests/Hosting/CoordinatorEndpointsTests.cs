using System.Net;
using System.Net.Sockets;
using Emc.Coordinator.Hosting;

namespace Emc.Coordinator.Tests.Hosting;

public sealed class CoordinatorEndpointsTests
{
    [Fact]
    public void PortZero_BecomesAFreePortOutsideTheEphemeralRange()
    {
        var ephemeralStart = int.Parse(File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries)[0], System.Globalization.CultureInfo.InvariantCulture);
        var ports = new HashSet<int>();
        for (var i = 0; i < 20; i++)
        {
            var uri = Assert.Single(CoordinatorEndpoints.Resolve("http://127.0.0.1:0", "API"));
            Assert.InRange(uri.Port, 1, ephemeralStart - 1);
            ports.Add(uri.Port);

            // Free at the time it is given: a listener can take it.
            using var listener = new TcpListener(IPAddress.Loopback, uri.Port);
            listener.Start();
        }

        Assert.True(ports.Count > 1, "the ports are drawn at random, so twenty draws are not all the same");
    }

    [Fact]
    public void GivenPorts_AreKept()
    {
        var uris = CoordinatorEndpoints.Resolve("http://127.0.0.1:5000;http://0.0.0.0:6000", "API");
        Assert.Equal([5000, 6000], uris.Select(u => u.Port));
    }
}

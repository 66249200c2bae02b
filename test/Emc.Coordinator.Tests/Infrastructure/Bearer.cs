using System.Net.Http.Headers;
using Emc.Client;

namespace Emc.Coordinator.Tests.Infrastructure;

/// <summary>Clients that send an API key, as users' clients do.</summary>
public static class Bearer
{
    /// <summary>An HTTP client of <paramref name="baseAddress"/> that sends <paramref name="key"/> (none when null).</summary>
    public static HttpClient Client(Uri baseAddress, string? key, TimeSpan? timeout = null)
    {
        var client = new HttpClient { BaseAddress = baseAddress, Timeout = timeout ?? TimeSpan.FromSeconds(100) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return client;
    }

    /// <summary>A handler that adds <c>Authorization: Bearer KEY</c> to every request (for gRPC channels over cleartext HTTP/2).</summary>
    public static HttpMessageHandler Handler(string key) => new AddKey(key) { InnerHandler = new SocketsHttpHandler() };

    private sealed class AddKey(string key) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            return base.SendAsync(request, cancellationToken);
        }
    }
}

/// <summary>A user account made for a test, and clients that carry its key.</summary>
public sealed record TestUser(string Id, string Key, string KeyId, EmcApiClient Api, HttpClient Http)
{
    /// <summary>What a test user is funded with when made: 100 EMC, enough for the budgets tests give.</summary>
    public const long Funds = 100_000_000;
}

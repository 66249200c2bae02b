using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Emc.Contracts.Inference.V2;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Core;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Tests.Accounts;

/// <summary>
/// Every endpoint the coordinator maps, read from its <see cref="EndpointDataSource"/>: without a key, with
/// a revoked key and with a key that is not a key it answers 401; with a user's key reaching for another
/// account's resource, or for what only the operator may do, 403 (409 for a name another account holds);
/// and a refused request changes nothing. An endpoint mapped without an entry here fails
/// <see cref="Catalog_CoversEveryMappedEndpoint"/>, so a new endpoint cannot go untested.
/// </summary>
[Collection(AccessCollection.Name)]
public sealed class AccessTests(AccessFixture fixture)
{
    /// <summary>What alice's key (a user's, not the owner's) gets.</summary>
    public enum UserGets
    {
        /// <summary>403: another account's resource, or the operator's action.</summary>
        Forbidden,

        /// <summary>409: a name another account holds.</summary>
        Conflict,

        /// <summary>Served (no resource of anyone else's is involved, or a listing shows only her own).</summary>
        Served,
    }

    /// <summary>
    /// An HTTP endpoint's probe: the request (aimed at bob's resources), what alice's key gets, whether the
    /// endpoint is open to all, and whether it is the operator's alone.
    /// </summary>
    public sealed record Probe(UserGets User, Func<AccessFixture, HttpRequestMessage> Request, bool Open = false, bool OperatorOnly = false);

    /// <summary>A gRPC method's probe: the call, and whether it is open to everyone.</summary>
    public sealed record GrpcProbe(UserGets User, Func<AccessFixture, CallInvoker, Task> Call, bool Open = false);

    private static readonly object OipBody = new { inputs = new[] { new { name = "input", shape = new[] { 1, 4 }, datatype = "FP32", data = new[] { 1f, 2f, 3f, 4f } } } };

    private static readonly Dictionary<string, Probe> Http = new(StringComparer.Ordinal)
    {
        ["GET /healthz"] = new(UserGets.Served, _ => Get("healthz"), Open: true),
        ["GET /readyz"] = new(UserGets.Served, _ => Get("readyz"), Open: true),
        ["* /metrics"] = new(UserGets.Forbidden, _ => Get("metrics"), OperatorOnly: true),

        ["POST /api/v1/accounts"] = new(UserGets.Forbidden, _ => Json(HttpMethod.Post, "api/v1/accounts", new { name = "eve" }), OperatorOnly: true),
        ["GET /api/v1/accounts/{account}"] = new(UserGets.Forbidden, _ => Get("api/v1/accounts/bob")),
        ["GET /api/v1/accounts/{account}/keys"] = new(UserGets.Forbidden, _ => Get("api/v1/accounts/bob/keys")),
        ["POST /api/v1/accounts/{account}/keys"] = new(UserGets.Forbidden, _ => Json(HttpMethod.Post, "api/v1/accounts/bob/keys", new { name = "stolen" })),
        ["DELETE /api/v1/accounts/{account}/keys/{id}"] = new(UserGets.Forbidden, f => new HttpRequestMessage(HttpMethod.Delete, $"api/v1/accounts/bob/keys/{f.Bob.KeyId}")),
        ["GET /api/v1/accounts/{account}/weight"] = new(UserGets.Forbidden, _ => Get("api/v1/accounts/bob/weight"), OperatorOnly: true),
        ["PUT /api/v1/accounts/{account}/weight"] = new(UserGets.Forbidden, _ => Json(HttpMethod.Put, "api/v1/accounts/bob/weight", new { weight = 9 }), OperatorOnly: true),

        ["GET /api/v1/info"] = new(UserGets.Served, _ => Get("api/v1/info")),
        ["GET /api/v1/nodes"] = new(UserGets.Served, _ => Get("api/v1/nodes")),
        ["GET /api/v1/nodes/{id}"] = new(UserGets.Served, _ => Get("api/v1/nodes/0x00000000000000000000000000000000000000ab")),
        ["GET /api/v1/link/ping"] = new(UserGets.Forbidden, _ => Get("api/v1/link/ping"), OperatorOnly: true),
        ["GET /api/v1/link/download"] = new(UserGets.Forbidden, _ => Get("api/v1/link/download?bytes=16"), OperatorOnly: true),
        ["POST /api/v1/link/upload"] = new(UserGets.Forbidden, _ => new HttpRequestMessage(HttpMethod.Post, "api/v1/link/upload") { Content = new ByteArrayContent(new byte[16]) }, OperatorOnly: true),
        ["GET /api/v1/scheduler"] = new(UserGets.Forbidden, _ => Get("api/v1/scheduler"), OperatorOnly: true),

        ["POST /api/v1/jobs"] = new(UserGets.Forbidden, _ => Json(HttpMethod.Post, "api/v1/jobs", new { account = "bob", tasks = new[] { new { kind = "sleep", input = "{}" } } })),
        ["GET /api/v1/jobs"] = new(UserGets.Forbidden, _ => Get("api/v1/jobs?account=bob")),
        ["GET /api/v1/jobs/{id}"] = new(UserGets.Forbidden, f => Get($"api/v1/jobs/{f.BobJob}")),
        ["POST /api/v1/jobs/{id}/cancel"] = new(UserGets.Forbidden, f => new HttpRequestMessage(HttpMethod.Post, $"api/v1/jobs/{f.BobJob}/cancel")),
        ["GET /api/v1/tasks"] = new(UserGets.Forbidden, f => Get($"api/v1/tasks?job={f.BobJob}")),
        ["GET /api/v1/tasks/{id}"] = new(UserGets.Forbidden, f => Get($"api/v1/tasks/{f.BobTask}")),

        ["GET,HEAD /api/v1/blobs/{hash}"] = new(UserGets.Forbidden, f => Get($"api/v1/blobs/{f.BobModelFile}"), OperatorOnly: true),
        ["PUT /api/v1/blobs/{hash}"] = new(UserGets.Served, _ => PutBlob("a blob alice may add: content-addressed, it changes nothing else")),

        ["POST /api/v1/datasets"] = new(UserGets.Conflict, _ => Multipart("api/v1/datasets", ("name", AccessFixture.BobDataset), ("format", "csv"), ("files", "x.csv", "a,label\n1,0\n2,1\n"))),
        ["GET /api/v1/datasets"] = new(UserGets.Served, _ => Get("api/v1/datasets")),
        ["GET /api/v1/datasets/{name}"] = new(UserGets.Forbidden, _ => Get($"api/v1/datasets/{AccessFixture.BobDataset}")),
        ["DELETE /api/v1/datasets/{name}"] = new(UserGets.Forbidden, _ => new HttpRequestMessage(HttpMethod.Delete, $"api/v1/datasets/{AccessFixture.BobDataset}")),
        ["POST /api/v1/training"] = new(UserGets.Forbidden, _ => Json(HttpMethod.Post, "api/v1/training", AccessFixture.TrainingSpec(AccessFixture.BobDataset))),
        ["GET /api/v1/training"] = new(UserGets.Served, _ => Get("api/v1/training")),
        ["GET /api/v1/training/{id}"] = new(UserGets.Forbidden, f => Get($"api/v1/training/{f.BobTraining}")),
        ["GET /api/v1/training/{id}/rounds"] = new(UserGets.Forbidden, f => Get($"api/v1/training/{f.BobTraining}/rounds")),
        ["POST /api/v1/training/{id}/cancel"] = new(UserGets.Forbidden, f => new HttpRequestMessage(HttpMethod.Post, $"api/v1/training/{f.BobTraining}/cancel")),

        ["GET /api/v1/models"] = new(UserGets.Served, _ => Get("api/v1/models")),
        ["GET /api/v1/models/{name}"] = new(UserGets.Forbidden, _ => Get($"api/v1/models/{AccessFixture.BobModel}")),
        ["POST /api/v1/models"] = new(UserGets.Conflict, f => Multipart("api/v1/models", ("name", AccessFixture.BobModel), ("format", "onnx"), ("file", "m.onnx", f.Onnx))),
        ["DELETE /api/v1/models/{name}"] = new(UserGets.Forbidden, _ => new HttpRequestMessage(HttpMethod.Delete, $"api/v1/models/{AccessFixture.BobModel}")),
        ["GET /api/v1/models/{name}/export"] = new(UserGets.Forbidden, _ => Get($"api/v1/models/{AccessFixture.BobModel}/export")),
        ["GET,HEAD /api/v1/models/{name}/files/{hash}"] = new(UserGets.Forbidden, f => Get($"api/v1/models/{AccessFixture.BobModel}/files/{f.BobModelFile}")),

        ["POST /api/v1/deployments"] = new(UserGets.Forbidden, _ => Json(HttpMethod.Post, "api/v1/deployments", new { model = AccessFixture.BobModel, version = 1 })),
        ["GET /api/v1/deployments"] = new(UserGets.Served, _ => Get("api/v1/deployments")),
        ["GET /api/v1/deployments/{id}"] = new(UserGets.Forbidden, f => Get($"api/v1/deployments/{f.BobDeployment}")),
        ["DELETE /api/v1/deployments/{id}"] = new(UserGets.Forbidden, f => new HttpRequestMessage(HttpMethod.Delete, $"api/v1/deployments/{f.BobDeployment}")),
        ["POST /api/v1/deployments/{id}/budget"] = new(UserGets.Forbidden, f => Keyed(Json(HttpMethod.Post, $"api/v1/deployments/{f.BobDeployment}/budget", new { amount = 1000 }))),

        ["GET /api/v1/accounts/{account}/balance"] = new(UserGets.Forbidden, _ => Get("api/v1/accounts/bob/balance")),
        ["POST /api/v1/accounts/{account}/fund"] = new(UserGets.Forbidden, _ => Keyed(Json(HttpMethod.Post, "api/v1/accounts/alice/fund", new { amount = 1000 })), OperatorOnly: true),
        ["GET /api/v1/ledger"] = new(UserGets.Forbidden, _ => Get("api/v1/ledger?account=user:bob")),
        ["GET /api/v1/nodes/{address}/stake"] = new(UserGets.Served, _ => Get($"api/v1/nodes/{StakedNode}/stake")),
        ["POST /api/v1/nodes/{address}/stake"] = new(UserGets.Forbidden, _ => Keyed(Json(HttpMethod.Post, $"api/v1/nodes/{StakedNode}/stake", new { amount = 1000, source = "deposit" }))),
        ["POST /api/v1/nodes/{address}/unstake"] = new(UserGets.Forbidden, _ => Keyed(Json(HttpMethod.Post, $"api/v1/nodes/{StakedNode}/unstake", new { amount = 1 }))),
        ["POST /api/v1/settlement/epochs"] = new(UserGets.Forbidden, _ => new HttpRequestMessage(HttpMethod.Post, "api/v1/settlement/epochs"), OperatorOnly: true),
        ["GET /api/v1/settlement/epochs/{number}"] = new(UserGets.Served, _ => Get("api/v1/settlement/epochs/latest")),
        ["GET /api/v1/settlement/proofs/{address}"] = new(UserGets.Served, _ => Get($"api/v1/settlement/proofs/{StakedNode}")),

        ["GET /v2/"] = new(UserGets.Served, _ => Get("v2")),
        ["GET /v2/health/live"] = new(UserGets.Served, _ => Get("v2/health/live"), Open: true),
        ["GET /v2/health/ready"] = new(UserGets.Served, _ => Get("v2/health/ready"), Open: true),
        ["GET /v2/models/{name}"] = new(UserGets.Forbidden, _ => Get($"v2/models/{AccessFixture.BobModel}")),
        ["GET /v2/models/{name}/versions/{version}"] = new(UserGets.Forbidden, _ => Get($"v2/models/{AccessFixture.BobModel}/versions/1")),
        ["GET /v2/models/{name}/ready"] = new(UserGets.Forbidden, _ => Get($"v2/models/{AccessFixture.BobModel}/ready")),
        ["GET /v2/models/{name}/versions/{version}/ready"] = new(UserGets.Forbidden, _ => Get($"v2/models/{AccessFixture.BobModel}/versions/1/ready")),
        ["POST /v2/models/{name}/infer"] = new(UserGets.Forbidden, _ => Json(HttpMethod.Post, $"v2/models/{AccessFixture.BobModel}/infer", OipBody)),
        ["POST /v2/models/{name}/versions/{version}/infer"] = new(UserGets.Forbidden, _ => Json(HttpMethod.Post, $"v2/models/{AccessFixture.BobModel}/versions/1/infer", OipBody)),

        ["GET /v1/models"] = new(UserGets.Served, _ => Get("v1/models")),
        ["GET /v1/models/{**id}"] = new(UserGets.Forbidden, _ => Get($"v1/models/{AccessFixture.BobModel}")),
        ["POST /v1/completions"] = new(UserGets.Forbidden, _ => Json(HttpMethod.Post, "v1/completions", new { model = AccessFixture.BobModel, prompt = "hello", max_tokens = 4 })),
        ["POST /v1/chat/completions"] = new(UserGets.Forbidden, _ => Json(HttpMethod.Post, "v1/chat/completions", new { model = AccessFixture.BobModel, messages = new[] { new { role = "user", content = "hello" } }, max_tokens = 4 })),
    };

    private static readonly Dictionary<string, GrpcProbe> Grpc = new(StringComparer.Ordinal)
    {
        ["POST /inference.GRPCInferenceService/ServerLive"] = new(UserGets.Served, (_, c) => Inference(c).ServerLiveAsync(new ServerLiveRequest()).ResponseAsync, Open: true),
        ["POST /inference.GRPCInferenceService/ServerReady"] = new(UserGets.Served, (_, c) => Inference(c).ServerReadyAsync(new ServerReadyRequest()).ResponseAsync, Open: true),
        ["POST /inference.GRPCInferenceService/ServerMetadata"] = new(UserGets.Served, (_, c) => Inference(c).ServerMetadataAsync(new ServerMetadataRequest()).ResponseAsync),
        ["POST /inference.GRPCInferenceService/ModelReady"] = new(UserGets.Forbidden, (_, c) => Inference(c).ModelReadyAsync(new ModelReadyRequest { Name = AccessFixture.BobModel }).ResponseAsync),
        ["POST /inference.GRPCInferenceService/ModelMetadata"] = new(UserGets.Forbidden, (_, c) => Inference(c).ModelMetadataAsync(new ModelMetadataRequest { Name = AccessFixture.BobModel }).ResponseAsync),
        ["POST /inference.GRPCInferenceService/ModelInfer"] = new(UserGets.Forbidden, (_, c) => Inference(c).ModelInferAsync(InferMessage()).ResponseAsync),

        // Methods and services that do not exist answer Unimplemented; the inference service's need a key first.
        ["* inference.GRPCInferenceService/{unimplementedMethod:grpcunimplemented}"] = new(UserGets.Served, (_, c) => Raw(c, "inference.GRPCInferenceService", "NoSuchMethod")),
        ["* {unimplementedService}/{unimplementedMethod:grpcunimplemented}"] = new(UserGets.Served, (_, c) => Raw(c, "no.such.Service", "Call"), Open: true),
        ["* emc.node.v1.NodeGateway/{unimplementedMethod:grpcunimplemented}"] = new(UserGets.Served, (_, c) => Raw(c, "emc.node.v1.NodeGateway", "NoSuchMethod"), Open: true),
    };

    /// <summary>
    /// The node gateway's stream: open to all, because the node proves its key on the stream itself with a
    /// signed challenge (Gateway/RegistrationTests).
    /// </summary>
    private const string NodeGateway = "POST /emc.node.v1.NodeGateway/Connect";

    public static TheoryData<string> HttpEndpoints() => [.. Http.Keys.Order(StringComparer.Ordinal)];

    public static TheoryData<string> GrpcEndpoints() => [.. Grpc.Keys.Order(StringComparer.Ordinal)];

    [Fact]
    public void Catalog_CoversEveryMappedEndpoint()
    {
        var mapped = Endpoints().Select(e => e.Key).ToHashSet(StringComparer.Ordinal);
        var known = Http.Keys.Concat(Grpc.Keys).Append(NodeGateway).ToHashSet(StringComparer.Ordinal);
        var untested = mapped.Except(known).Order(StringComparer.Ordinal).ToList();
        var gone = known.Except(mapped).Order(StringComparer.Ordinal).ToList();
        Assert.True(untested.Count == 0, "mapped endpoints without an access test (add them to AccessTests): " + string.Join(", ", untested));
        Assert.True(gone.Count == 0, "access tests of endpoints no longer mapped: " + string.Join(", ", gone));
    }

    [Fact]
    public void OpenEndpoints_AreOnlyHealthAndTheNodeGateway()
    {
        var open = Endpoints().Where(e => e.Endpoint.Metadata.GetMetadata<IAllowAnonymous>() is not null).Select(e => e.Key).Order(StringComparer.Ordinal);
        string[] expected = [.. Http.Where(p => p.Value.Open).Select(p => p.Key), .. Grpc.Where(p => p.Value.Open).Select(p => p.Key), NodeGateway];
        Assert.Equal(expected.Order(StringComparer.Ordinal), open, StringComparer.Ordinal);
    }

    [Theory]
    [MemberData(nameof(HttpEndpoints))]
    public async Task Endpoint_NoKeyRevokedKeyOrAnotherAccountsResource_RefusedAndNothingChanges(string endpoint)
    {
        var probe = Http[endpoint];
        var baseAddress = fixture.Coordinator.Host.Endpoints.ApiUrl;
        using var anonymous = Bearer.Client(baseAddress, null);
        using var revoked = Bearer.Client(baseAddress, fixture.RevokedKey);
        using var unknown = Bearer.Client(baseAddress, fixture.UnknownKey);
        using var malformed = Bearer.Client(baseAddress, "not-a-key");

        if (probe.Open)
        {
            using var response = await anonymous.SendAsync(probe.Request(fixture));
            Assert.True(response.IsSuccessStatusCode, $"{endpoint} is open, but answered {(int)response.StatusCode}");
            return;
        }

        foreach (var (client, why) in new[] { (anonymous, "needs an API key"), (revoked, "revoked"), (unknown, "not valid"), (malformed, "malformed") })
        {
            await RefusedAsync(client, probe, endpoint, HttpStatusCode.Unauthorized, why);
        }

        switch (probe.User)
        {
            case UserGets.Forbidden:
                await RefusedAsync(fixture.Alice.Http, probe, endpoint, HttpStatusCode.Forbidden, null);
                break;
            case UserGets.Conflict:
                await RefusedAsync(fixture.Alice.Http, probe, endpoint, HttpStatusCode.Conflict, "another account");
                break;
            default:
                using (var response = await fixture.Alice.Http.SendAsync(probe.Request(fixture)))
                {
                    Assert.True(
                        (int)response.StatusCode is not (401 or 403) and < 500,
                        $"{endpoint}: alice's key got {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
                }

                break;
        }

        // What reads: the owner's key (the operator's, for what is the operator's) is let through.
        using var read = probe.Request(fixture);
        if (read.Method == HttpMethod.Get)
        {
            using var response = await (probe.OperatorOnly ? fixture.Coordinator.Http : fixture.Bob.Http).SendAsync(read);
            Assert.True((int)response.StatusCode is not (401 or 403), $"{endpoint}: the {(probe.OperatorOnly ? "operator" : "owner")}'s key got {(int)response.StatusCode}");
        }
    }

    [Theory]
    [MemberData(nameof(GrpcEndpoints))]
    public async Task GrpcMethod_NoKeyRevokedKeyOrAnotherAccountsModel_RefusedAndNothingChanges(string method)
    {
        var probe = Grpc[method];
        var address = fixture.Coordinator.Host.Endpoints.GrpcUrl;
        using var anonymous = GrpcChannel.ForAddress(address);
        using var revoked = GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = Bearer.Handler(fixture.RevokedKey) });
        using var alice = GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = Bearer.Handler(fixture.Alice.Key) });
        var before = await fixture.SnapshotAsync();

        var noKey = await StatusOfAsync(probe.Call(fixture, anonymous.CreateCallInvoker()));
        if (probe.Open)
        {
            Assert.True(noKey is StatusCode.OK or StatusCode.Unimplemented, $"{method} is open, but answered {noKey}");
            return;
        }

        Assert.Equal(StatusCode.Unauthenticated, noKey);
        var revokedError = await Assert.ThrowsAsync<RpcException>(() => probe.Call(fixture, revoked.CreateCallInvoker()));
        Assert.Equal(StatusCode.Unauthenticated, revokedError.StatusCode);
        Assert.Contains("revoked", revokedError.Status.Detail, StringComparison.Ordinal);

        var user = await StatusOfAsync(probe.Call(fixture, alice.CreateCallInvoker()));
        Assert.Equal(probe.User == UserGets.Forbidden ? StatusCode.PermissionDenied : Expected(method), user);
        Assert.Equal(before, await fixture.SnapshotAsync());
    }

    private static StatusCode Expected(string method) => method.Contains("{unimplementedMethod", StringComparison.Ordinal) ? StatusCode.Unimplemented : StatusCode.OK;

    private async Task RefusedAsync(HttpClient client, Probe probe, string endpoint, HttpStatusCode status, string? why)
    {
        var before = await fixture.SnapshotAsync();
        using var request = probe.Request(fixture);
        var family = request.RequestUri!.OriginalString;
        var head = request.Method == HttpMethod.Head;
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{endpoint}: expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal(before, await fixture.SnapshotAsync());
        if (status == HttpStatusCode.Unauthorized)
        {
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        }

        if (head)
        {
            return;
        }

        // The error in the form the route family uses for all its errors.
        using var json = JsonDocument.Parse(body);
        string message;
        if (family.StartsWith("v2", StringComparison.Ordinal))
        {
            message = json.RootElement.GetProperty("error").GetString()!;
        }
        else if (family.StartsWith("v1", StringComparison.Ordinal))
        {
            var error = json.RootElement.GetProperty("error");
            message = error.GetProperty("message").GetString()!;
            Assert.Equal(status == HttpStatusCode.Unauthorized ? "invalid_api_key" : "permission_denied", error.GetProperty("code").GetString());
        }
        else
        {
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal((int)status, json.RootElement.GetProperty("status").GetInt32());
            message = json.RootElement.GetProperty("detail").GetString()!;
        }

        Assert.False(string.IsNullOrWhiteSpace(message));
        if (why is not null)
        {
            Assert.Contains(why, message, StringComparison.Ordinal);
        }
    }

    private IEnumerable<(string Key, RouteEndpoint Endpoint)> Endpoints() =>
        fixture.Coordinator.Host.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().Select(e =>
            ($"{(e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods is { Count: > 0 } methods ? string.Join(",", methods) : "*")} {e.RoutePattern.RawText}", e));

    private static async Task<StatusCode> StatusOfAsync(Task call)
    {
        try
        {
            await call;
            return StatusCode.OK;
        }
        catch (RpcException ex)
        {
            return ex.StatusCode;
        }
    }

    private static GRPCInferenceService.GRPCInferenceServiceClient Inference(CallInvoker invoker) => new(invoker);

    private static ModelInferRequest InferMessage()
    {
        var request = new ModelInferRequest { ModelName = AccessFixture.BobModel };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32", Contents = new InferTensorContents() };
        input.Shape.AddRange([1, 4]);
        input.Contents.Fp32Contents.AddRange([1f, 2f, 3f, 4f]);
        request.Inputs.Add(input);
        return request;
    }

    private static Task<byte[]> Raw(CallInvoker invoker, string service, string name)
    {
        var marshaller = Marshallers.Create<byte[]>(b => b, b => b);
        var method = new Method<byte[], byte[]>(MethodType.Unary, service, name, marshaller, marshaller);
        return invoker.AsyncUnaryCall(method, null, default, []).ResponseAsync;
    }

    private static HttpRequestMessage Get(string path) => new(HttpMethod.Get, path);

    /// <summary>A node address for the stake probes (no node needs to be connected for its stake).</summary>
    private const string StakedNode = "0x00000000000000000000000000000000000000cd";

    private static HttpRequestMessage Keyed(HttpRequestMessage request)
    {
        request.Headers.Add("Idempotency-Key", "access-probe");
        return request;
    }

    private static HttpRequestMessage Json(HttpMethod method, string path, object body) =>
        new(method, path) { Content = JsonContent.Create(body, body.GetType(), options: EmcJson.Options) };

    private static HttpRequestMessage PutBlob(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        return new HttpRequestMessage(HttpMethod.Put, $"api/v1/blobs/{Convert.ToHexStringLower(SHA256.HashData(bytes))}") { Content = new ByteArrayContent(bytes) };
    }

    private static HttpRequestMessage Multipart(string path, params object[] parts)
    {
        var form = new MultipartFormDataContent();
        foreach (var part in parts)
        {
            switch (part)
            {
                case (string name, string value):
                    form.Add(new StringContent(value), name);
                    break;
                case (string name, string file, string text):
                    form.Add(new ByteArrayContent(Encoding.UTF8.GetBytes(text)) { Headers = { ContentType = new MediaTypeHeaderValue("application/octet-stream") } }, name, file);
                    break;
                case (string name, string file, byte[] bytes):
                    form.Add(new ByteArrayContent(bytes) { Headers = { ContentType = new MediaTypeHeaderValue("application/octet-stream") } }, name, file);
                    break;
            }
        }

        return new HttpRequestMessage(HttpMethod.Post, path) { Content = form };
    }
}

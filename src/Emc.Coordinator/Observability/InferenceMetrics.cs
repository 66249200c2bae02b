using System.Globalization;
using Prometheus;

namespace Emc.Coordinator.Observability;

/// <summary>
/// The Open Inference Protocol REST infer requests the coordinator answered: <c>emc_inference_requests_total{code}</c>
/// and <c>emc_inference_request_seconds</c>. These requests skip the general HTTP metrics (see
/// <c>OipInferFastPath</c>), so they are counted here, for whichever way they came in.
/// </summary>
public static class InferenceMetrics
{
    private static readonly Counter Requests = Metrics.CreateCounter(
        "emc_inference_requests_total", "Open Inference Protocol REST infer requests answered, by HTTP status code.",
        new CounterConfiguration { LabelNames = ["code"] });

    private static readonly Histogram Seconds = Metrics.CreateHistogram(
        "emc_inference_request_seconds", "Time from an Open Inference Protocol REST infer request's handler starting to its answer written.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0001, 2, 16) });

    // One child per status code, made once: a label lookup per request is what the general metrics cost.
    private static readonly Counter.Child?[] ByCode = new Counter.Child?[600];

    /// <summary>Counts one answer with <paramref name="statusCode"/> that took <paramref name="elapsed"/>.</summary>
    public static void Answered(int statusCode, TimeSpan elapsed)
    {
        var code = Math.Clamp(statusCode, 0, ByCode.Length - 1);
        var child = Volatile.Read(ref ByCode[code]);
        if (child is null)
        {
            child = Requests.WithLabels(code.ToString(CultureInfo.InvariantCulture));
            Volatile.Write(ref ByCode[code], child);
        }

        child.Inc();
        Seconds.Observe(elapsed.TotalSeconds);
    }
}

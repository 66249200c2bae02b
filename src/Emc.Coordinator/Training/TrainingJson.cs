using System.Text.Json;
using Emc.Core;
using Emc.Core.Data;
using Emc.Core.Training;

namespace Emc.Coordinator.Training;

/// <summary>The JSON documents kept in the training tables, read and written one way.</summary>
internal static class TrainingJson
{
    public static string Write<T>(T value) => JsonSerializer.Serialize(value, EmcJson.Options);

    public static TrainingJobSpec ReadSpec(string json) =>
        JsonSerializer.Deserialize<TrainingJobSpec>(json, EmcJson.Options) ?? throw new InvalidDataException("empty training spec");

    public static DatasetManifest ReadManifest(string json) =>
        JsonSerializer.Deserialize<DatasetManifest>(json, EmcJson.Options) ?? throw new InvalidDataException("empty dataset manifest");

    public static ModelDescriptor ReadDescriptor(string json) =>
        JsonSerializer.Deserialize<ModelDescriptor>(json, EmcJson.Options) ?? throw new InvalidDataException("empty model descriptor");

    public static TrainingProgress ReadProgress(string json) =>
        JsonSerializer.Deserialize<TrainingProgress>(json, EmcJson.Options) ?? new TrainingProgress();

    public static RoundSummary ReadRound(string json) =>
        JsonSerializer.Deserialize<RoundSummary>(json, EmcJson.Options) ?? throw new InvalidDataException("empty round summary");
}

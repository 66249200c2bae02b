namespace Emc.Core.Data;

/// <summary>
/// Turns uploaded files into a validated <see cref="ParsedDataset"/>, or throws a
/// <see cref="DatasetFormatException"/> naming the file and the problem; nothing partial comes back.
/// </summary>
/// <remarks>
/// Each file's name picks its split (<see cref="DatasetSplits.FromFileName"/>). A classification split
/// needs exactly one source of features and one of labels: an IDX file of rank ≥ 2 and one of rank 1,
/// x_… and y_… .npy files or .npz entries, or one CSV file holding both. Text files of one split are
/// concatenated in the order given. Every file may be gzip-compressed.
/// </remarks>
public static class DatasetParser
{
    /// <summary>Text is modelled byte by byte: 256 classes.</summary>
    public const int TextClasses = 256;

    public static ParsedDataset Parse(IReadOnlyList<DatasetSource> files, DatasetFormat format, DatasetParseOptions options)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (!Enum.IsDefined(format))
        {
            throw new ArgumentOutOfRangeException(nameof(format), format, "Unknown dataset format.");
        }

        if (files.Count == 0)
        {
            throw new DatasetFormatException("no files: a dataset needs at least one file");
        }

        var parts = new List<ParsedPart>();
        foreach (var file in files)
        {
            if (file is null || string.IsNullOrEmpty(file.FileName) || file.Content is null)
            {
                throw new ArgumentException("Every file needs a name and content.", nameof(files));
            }

            parts.AddRange(Read(file, format, options));
        }

        return format == DatasetFormat.Text
            ? AssembleText(parts)
            : AssembleClassification(parts, format, options);
    }

    private static List<ParsedPart> Read(DatasetSource file, DatasetFormat format, DatasetParseOptions options)
    {
        if (format == DatasetFormat.Npz)
        {
            return NpzReader.Read(file, options.MaxDecompressedBytes);
        }

        var split = DatasetSplits.FromFileName(file.FileName);
        var isLabels = format == DatasetFormat.Npy
            && (Arrays.IsLabels(file.FileName)
                ?? throw DatasetFormatException.For(file.FileName, $"cannot tell from the name whether the file holds features or labels; {Arrays.RoleHint}"));
        using var source = SourceStream.Open(file, new DecompressionBudget(options.MaxDecompressedBytes));
        return
        [
            format switch
            {
                DatasetFormat.Idx => IdxReader.Read(source, split),
                DatasetFormat.Npy => NpyReader.Read(source, split, isLabels),
                DatasetFormat.Csv => CsvReader.Read(source, split, options.LabelColumn),
                _ => ReadText(source, split),
            },
        ];
    }

    private static ParsedPart ReadText(SourceStream source, string split)
    {
        var bytes = source.ReadToEnd();
        return bytes.Length > 0
            ? new ParsedPart { Source = source.Name, Split = split, Text = bytes }
            : throw source.Error("the file is empty; a text dataset needs some text");
    }

    private static ParsedDataset AssembleText(List<ParsedPart> parts)
    {
        var splits = new Dictionary<string, ParsedSplit>(StringComparer.Ordinal);
        foreach (var group in parts.GroupBy(part => part.Split).OrderBy(group => DatasetSplits.Order(group.Key)))
        {
            var total = group.Sum(part => (long)part.Text!.Length);
            if (total > Array.MaxLength)
            {
                throw DatasetFormatException.For(group.Last().Source, $"the {group.Key} split's files hold {total} bytes together, more than one array can hold ({Array.MaxLength} bytes)");
            }

            byte[] data;
            if (group.Count() == 1)
            {
                data = group.First().Text!;
            }
            else
            {
                data = new byte[total];
                var offset = 0;
                foreach (var part in group)
                {
                    part.Text!.CopyTo(data, offset);
                    offset += part.Text.Length;
                }
            }

            splits[group.Key] = new ParsedSplit
            {
                ElementType = ElementType.U8,
                SampleShape = [],
                Count = data.Length,
                Data = data,
                Labels = null,
                Classes = TextClasses,
            };
        }

        return new ParsedDataset { Task = DatasetTask.LanguageModeling, Splits = splits.AsReadOnly() };
    }

    private static ParsedDataset AssembleClassification(List<ParsedPart> parts, DatasetFormat format, DatasetParseOptions options)
    {
        var pending = new Dictionary<string, PendingSplit>(StringComparer.Ordinal);
        foreach (var part in parts)
        {
            if (!pending.TryGetValue(part.Split, out var split))
            {
                split = new PendingSplit(part.Split);
                pending.Add(part.Split, split);
            }

            split.Add(part);
        }

        var ordered = pending.Values.OrderBy(split => DatasetSplits.Order(split.Name)).ToList();
        var noun = format == DatasetFormat.Idx ? "images" : "examples";
        foreach (var split in ordered)
        {
            split.CheckComplete(noun);
        }

        var reference = ordered[0];
        foreach (var split in ordered.Skip(1))
        {
            if (!split.Features!.SampleShape.AsSpan().SequenceEqual(reference.Features!.SampleShape))
            {
                throw DatasetFormatException.For(split.FeaturesSource!, $"shape mismatch: {split.Name} examples have shape {Arrays.FormatShape(split.Features.SampleShape)} but {reference.Name} examples ({reference.FeaturesSource}) have {Arrays.FormatShape(reference.Features!.SampleShape)}");
            }

            if (split.Features.ElementType != reference.Features.ElementType)
            {
                throw DatasetFormatException.For(split.FeaturesSource!, $"type mismatch: {split.Name} features are {EmcJson.EnumText(split.Features.ElementType)} but {reference.Name} features ({reference.FeaturesSource}) are {EmcJson.EnumText(reference.Features.ElementType)}; store every split with the same dtype");
            }
        }

        var classes = CountClasses(ordered, options.Classes);
        var splits = new Dictionary<string, ParsedSplit>(StringComparer.Ordinal);
        foreach (var split in ordered)
        {
            splits[split.Name] = new ParsedSplit
            {
                ElementType = split.Features!.ElementType,
                SampleShape = split.Features.SampleShape,
                Count = split.Features.Count,
                Data = split.Features.Data,
                Labels = split.Labels!.Values,
                Classes = classes,
            };
        }

        return new ParsedDataset { Task = DatasetTask.Classification, Splits = splits.AsReadOnly() };
    }

    private static int CountClasses(List<PendingSplit> splits, int? stated)
    {
        if (stated is int classes)
        {
            foreach (var split in splits)
            {
                var index = Array.FindIndex(split.Labels!.Values, label => label >= classes);
                if (index >= 0)
                {
                    throw DatasetFormatException.For(split.LabelsSource!, $"label {split.Labels.Values[index]} {split.Labels.Position(index)} is out of range: with {classes} classes labels must be in [0, {classes})");
                }
            }

            return classes;
        }

        long max = -1;
        foreach (var split in splits)
        {
            var values = split.Labels!.Values;
            var index = values.AsSpan().IndexOf(values.Max());
            if (values[index] > max)
            {
                max = values[index];
                if (max >= DatasetParseOptions.MaxClasses)
                {
                    throw DatasetFormatException.For(split.LabelsSource!, $"label {max} {split.Labels.Position(index)} means at least {max + 1} classes, more than the limit of {DatasetParseOptions.MaxClasses}");
                }
            }
        }

        return (int)max + 1;
    }

    /// <summary>The features and labels found so far for one split.</summary>
    private sealed class PendingSplit(string name)
    {
        public string Name { get; } = name;

        public FeatureArray? Features { get; private set; }

        public string? FeaturesSource { get; private set; }

        public LabelArray? Labels { get; private set; }

        public string? LabelsSource { get; private set; }

        public void Add(ParsedPart part)
        {
            if (part.Features is not null)
            {
                if (Features is not null)
                {
                    throw DatasetFormatException.For(part.Source, $"two files give the {Name} features: {FeaturesSource} and {part.Source}");
                }

                Features = part.Features;
                FeaturesSource = part.Source;
            }

            if (part.Labels is not null)
            {
                if (Labels is not null)
                {
                    throw DatasetFormatException.For(part.Source, $"two files give the {Name} labels: {LabelsSource} and {part.Source}");
                }

                Labels = part.Labels;
                LabelsSource = part.Source;
            }
        }

        public void CheckComplete(string noun)
        {
            if (Features is null)
            {
                throw DatasetFormatException.For(LabelsSource!, $"the {Name} split has labels but no features; upload the {Name} features too (the split comes from the file name)");
            }

            if (Labels is null)
            {
                throw DatasetFormatException.For(FeaturesSource!, $"the {Name} split has features but no labels; upload the {Name} labels too (the split comes from the file name)");
            }

            if (Features.Count != Labels.Values.Length)
            {
                throw DatasetFormatException.For(FeaturesSource!, $"shape mismatch: {FeaturesSource} has {Features.Count} {noun} but {LabelsSource} has {Labels.Values.Length} labels");
            }
        }
    }
}

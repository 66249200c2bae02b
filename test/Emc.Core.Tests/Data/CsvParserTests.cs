using Emc.Core.Data;
using static Emc.Core.Tests.Data.DataFiles;

namespace Emc.Core.Tests.Data;

public sealed class CsvParserTests
{
    private static DatasetSource Csv(string name, string text) => Source(name, Utf8(text));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Parse_LabelColumnAnywhere_GivesFeaturesAndLabels(bool gzip)
    {
        var text = "a,label,b\n1.5,2,-3\n4e2,0,0.25\r\n";

        var dataset = Parse(DatasetFormat.Csv, Source("iris.csv", gzip ? Gzip(Utf8(text)) : Utf8(text)));

        var train = dataset.Splits["train"];
        Assert.Equal(ElementType.F32, train.ElementType);
        Assert.Equal([2], train.SampleShape);
        Assert.Equal(2, train.Count);
        Assert.Equal([1.5f, -3, 400, 0.25f], Floats(train.Data));
        Assert.Equal([2L, 0], train.Labels!);
        Assert.Equal(3, train.Classes);
    }

    [Fact]
    public void Parse_TrainAndTestFiles_GiveTwoSplits()
    {
        var dataset = Parse(DatasetFormat.Csv, Csv("mnist_train.csv", "label,p0\n1,0\n"), Csv("mnist_test.csv", "label,p0\n4,1\n"));

        Assert.Equal(["train", "test"], dataset.Splits.Keys);
        Assert.All(dataset.Splits.Values, split => Assert.Equal(5, split.Classes));
    }

    [Fact]
    public void Parse_QuotesBomBlankLinesAndNoFinalNewline_AreHandled()
    {
        var text = "\uFEFF\"x\",\"Target\",\"y, quoted\"\n\n\"1\",2,3\n\n4,\"5\",6";
        var options = new DatasetParseOptions { LabelColumn = "target" };

        var dataset = Parse(DatasetFormat.Csv, options, Csv("data.csv", text));

        var train = dataset.Splits["train"];
        Assert.Equal([1f, 3, 4, 6], Floats(train.Data));
        Assert.Equal([2L, 5], train.Labels!);
    }

    [Fact]
    public void Parse_IntegralFloatLabel_IsAccepted()
    {
        var dataset = Parse(DatasetFormat.Csv, Csv("d.csv", "label,x\n3.0,1\n"));

        Assert.Equal([3L], dataset.Splits["train"].Labels!);
    }

    [Fact]
    public void Parse_NonNumericValue_NamesRowAndColumn()
    {
        Fails(DatasetFormat.Csv, [Csv("d.csv", "label,x,y\n0,1,2\n1,2,abc\n")], "d.csv: row 3, column 3 'y': 'abc' is not a finite number");
    }

    [Fact]
    public void Parse_EmptyValue_NamesRowAndColumn()
    {
        Fails(DatasetFormat.Csv, [Csv("d.csv", "label,x,y\n0,,2\n")], "d.csv: row 2, column 2 'x': the value is empty");
    }

    [Fact]
    public void Parse_NaN_IsRefused()
    {
        Fails(DatasetFormat.Csv, [Csv("d.csv", "label,x\n0,NaN\n")], "d.csv: row 2, column 2 'x': 'NaN' is not a finite number");
    }

    [Fact]
    public void Parse_DecimalComma_IsNotANumber()
    {
        Fails(DatasetFormat.Csv, [Csv("d.csv", "label;x\n0;1,5\n")], "d.csv: row 1: the header has no label column 'label' (columns: label;x)");
    }

    [Fact]
    public void Parse_RaggedRow_NamesRowAndCounts()
    {
        Fails(DatasetFormat.Csv, [Csv("d.csv", "label,x,y\n0,1,2\n1,2\n")], "d.csv: row 3 has 2 fields but the header has 3 columns");
    }

    [Fact]
    public void Parse_QuotedNewline_CountsRows()
    {
        Fails(DatasetFormat.Csv, [Csv("d.csv", "label,\"x\ny\"\n0,1\n1,2,3\n")], "d.csv: row 4 has 3 fields");
    }

    [Fact]
    public void Parse_MissingLabelColumn_ListsColumns()
    {
        Fails(DatasetFormat.Csv, [Csv("d.csv", "class,x\n0,1\n")], "d.csv: row 1: the header has no label column 'label' (columns: class, x)");
    }

    [Fact]
    public void Parse_NonIntegerLabel_NamesRow()
    {
        Fails(DatasetFormat.Csv, [Csv("d.csv", "label,x\n0,1\n2.5,1\n")], "d.csv: row 3, column 1 'label': '2.5' is not an integer class label");
    }

    [Fact]
    public void Parse_NegativeLabel_NamesRow()
    {
        Fails(DatasetFormat.Csv, [Csv("d.csv", "x,label\n0,1\n1,-1\n")], "d.csv: row 3, column 2 'label': label -1 is negative");
    }

    [Fact]
    public void Parse_EmptyFile_SaysEmpty()
    {
        Fails(DatasetFormat.Csv, [Csv("d.csv", "\n\n")], "d.csv: the file is empty");
    }

    [Fact]
    public void Parse_HeaderOnly_SaysNoDataRows()
    {
        Fails(DatasetFormat.Csv, [Csv("d.csv", "label,x\n")], "d.csv: the file has a header but no data rows");
    }

    [Fact]
    public void Parse_OnlyLabelColumn_SaysNoFeatures()
    {
        Fails(DatasetFormat.Csv, [Csv("d.csv", "label\n1\n")], "d.csv: there are no feature columns besides the label column 'label'");
    }

    [Fact]
    public void Parse_UnclosedQuote_SaysSo()
    {
        Fails(DatasetFormat.Csv, [Csv("d.csv", "label,x\n0,\"1\n")], "d.csv: row 2: a quoted field is not closed");
    }

    [Fact]
    public void Parse_LabelOutOfStatedRange_NamesValueAndRow()
    {
        var options = new DatasetParseOptions { Classes = 3 };

        Fails(DatasetFormat.Csv, options, [Csv("d.csv", "label,x\n0,1\n\n3,1\n")], "d.csv: label 3 in row 4 is out of range: with 3 classes labels must be in [0, 3)");
    }

    [Fact]
    public void Parse_DifferentColumnCountsAcrossSplits_SaysShapeMismatch()
    {
        Fails(DatasetFormat.Csv, [Csv("train.csv", "label,x\n0,1\n"), Csv("test.csv", "label,x,y\n0,1,2\n")], "test.csv: shape mismatch: test examples have shape [2] but train examples (train.csv) have [1]");
    }

    [Fact]
    public void Parse_TwoFilesForOneSplit_NamesBoth()
    {
        Fails(DatasetFormat.Csv, [Csv("a.csv", "label,x\n0,1\n"), Csv("b.csv", "label,x\n0,1\n")], "b.csv: two files give the train features: a.csv and b.csv");
    }
}

public sealed class TextParserTests
{
    [Fact]
    public void Parse_TextFiles_ConcatenatesPerSplit()
    {
        var dataset = Parse(
            DatasetFormat.Text,
            Source("shakespeare-1.txt", Utf8("to be ")),
            Source("shakespeare-valid.txt", Gzip(Utf8("or not"))),
            Source("shakespeare-2.txt.gz", Gzip(Utf8("or not to be"))));

        Assert.Equal(DatasetTask.LanguageModeling, dataset.Task);
        Assert.Equal(["train", "validation"], dataset.Splits.Keys);
        var train = dataset.Splits["train"];
        Assert.Equal(Utf8("to be or not to be"), train.Data);
        Assert.Equal(18, train.Count);
        Assert.Empty(train.SampleShape);
        Assert.Equal(ElementType.U8, train.ElementType);
        Assert.Null(train.Labels);
        Assert.Equal(256, train.Classes);
        Assert.Equal(Utf8("or not"), dataset.Splits["validation"].Data);
    }

    [Fact]
    public void Parse_EmptyText_NamesFile()
    {
        Fails(DatasetFormat.Text, [Source("a.txt", Utf8("abc")), Source("b.txt", [])], "b.txt: the file is empty");
    }

    [Fact]
    public void Parse_EmptyGzippedText_NamesFile()
    {
        Fails(DatasetFormat.Text, [Source("b.txt.gz", Gzip([]))], "b.txt.gz: the file is empty");
    }
}

using SharpBpf.Btf;
using SharpBpf.Objects;

namespace SharpBpf.Tests.Btf;

public class BtfSpecTests
{
    private const int Pointer = 2, Array = 3, Struct = 4, Enum = 6, Typedef = 8, Const = 10, Float = 16, DeclTag = 17, TypeTag = 18, Enum64 = 19;

    [Fact]
    public void ParsesEnum64WithSignedAndUnsignedValues()
    {
        var b = new BtfBuilder();
        uint big = b.Name("BIG"), neg = b.Name("NEG");
        b.Type(b.Name("wide"), Enum64, 2, 8, kindFlag: true, big, 0x00000001, 0x80000000, neg, 0xffffffff, 0xffffffff);
        var btf = BtfSpec.Parse(b.Build());
        var e = Assert.IsType<BtfEnum>(btf[1]);
        Assert.Equal(BtfKind.Enum64, e.Kind);
        Assert.True(e.Signed);
        Assert.Equal(8u, e.Size);
        Assert.Equal([new BtfEnumValue("BIG", unchecked((long)0x8000000000000001)), new BtfEnumValue("NEG", -1)], e.Values);
        Assert.Equal(8ul, btf.SizeOf(1));
    }

    [Fact]
    public void ParsesUnsignedEnumValuesAsUnsigned()
    {
        var b = new BtfBuilder();
        uint high = b.Name("HIGH");
        b.Type(b.Name("e"), Enum, 1, 4, kindFlag: false, high, 0xfffffffe);
        var e = Assert.IsType<BtfEnum>(BtfSpec.Parse(b.Build())[1]);
        Assert.Equal(0xfffffffeL, e.Values[0].Value);
    }

    [Fact]
    public void ResolvesSizesThroughTypedefsModifiersArraysAndTags()
    {
        var b = new BtfBuilder();
        b.Int("int", 4, signed: true);                                   // 1
        b.Type(b.Name("int_t"), Typedef, 0, 1);                         // 2
        b.Type(0, Const, 0, 2);                                          // 3
        b.Type(b.Name("user"), TypeTag, 0, 3);                           // 4
        b.Type(0, Array, 0, 0, false, 4, 1, 10);                         // 5: int_t[10]
        b.Type(0, Pointer, 0, 5);                                        // 6
        b.Type(b.Name("f"), Float, 0, 8);                                // 7
        uint a = b.Name("a");
        b.Type(b.Name("s"), Struct, 1, 40, false, a, 5, 0);              // 8
        b.Type(b.Name("tag"), DeclTag, 0, 8, false, unchecked((uint)-1));// 9
        var btf = BtfSpec.Parse(b.Build());
        Assert.Equal(4ul, btf.SizeOf(4));
        Assert.Equal(40ul, btf.SizeOf(5));
        Assert.Equal(8ul, btf.SizeOf(6));
        Assert.Equal(8ul, btf.SizeOf(7));
        Assert.Equal(40ul, btf.SizeOf(8));
        Assert.Equal("int", btf.SkipQualifiers(4).Name);
        Assert.Equal(-1, Assert.IsType<BtfDeclTag>(btf[9]).ComponentIndex);
        Assert.Equal(BtfKind.TypeTag, btf[4].Kind);
        Assert.Equal(1, btf.CountByKind()[BtfKind.Float]);
    }

    [Fact]
    public void TypedefLoopIsAnErrorNotAHang()
    {
        var b = new BtfBuilder();
        b.Type(b.Name("a"), Typedef, 0, 2);
        b.Type(b.Name("b"), Typedef, 0, 1);
        var btf = BtfSpec.Parse(b.Build());
        Assert.Contains("loop", Assert.Throws<ObjectFileException>(() => btf.SizeOf(1)).Message);
        Assert.Contains("loop", Assert.Throws<ObjectFileException>(() => btf.SkipQualifiers(2)).Message);
    }

    [Fact]
    public void ArrayLoopIsAnErrorNotAHang()
    {
        var b = new BtfBuilder();
        b.Type(0, Array, 0, 0, false, 1, 1, 2); // an array of itself
        var btf = BtfSpec.Parse(b.Build());
        Assert.Throws<ObjectFileException>(() => btf.SizeOf(1));
    }

    [Fact]
    public void HugeArrayIsAnError()
    {
        var b = new BtfBuilder();
        b.Int("long", 8);
        b.Type(0, Array, 0, 0, false, 1, 1, 0xffffffff);
        b.Type(0, Array, 0, 0, false, 2, 1, 0xffffffff);
        var btf = BtfSpec.Parse(b.Build());
        Assert.Contains("overflows", Assert.Throws<ObjectFileException>(() => btf.SizeOf(3)).Message);
    }

    [Fact]
    public void OutOfRangeReferencesAndStringsAreErrors()
    {
        var b = new BtfBuilder();
        b.Type(b.Name("t"), Typedef, 0, 99);
        var btf = BtfSpec.Parse(b.Build());
        Assert.Contains("out of range", Assert.Throws<ObjectFileException>(() => btf.SizeOf(1)).Message);

        var bad = new BtfBuilder();
        bad.Type(5000, Typedef, 0, 0);
        var ex = Assert.Throws<ObjectFileException>(() => BtfSpec.Parse(bad.Build()));
        Assert.Equal(".BTF", ex.Section);
    }

    [Fact]
    public void HugeMemberCountIsAnErrorNotAnAllocation()
    {
        var b = new BtfBuilder();
        b.Type(b.Name("s"), Struct, 0xffff, 4);
        var ex = Assert.Throws<ObjectFileException>(() => BtfSpec.Parse(b.Build()));
        Assert.Contains("run past the end", ex.Message);
    }

    [Fact]
    public void UnknownKindAndBadHeaderAreErrors()
    {
        var b = new BtfBuilder();
        b.Type(0, 31, 0, 0);
        Assert.Contains("unknown kind", Assert.Throws<ObjectFileException>(() => BtfSpec.Parse(b.Build())).Message);
        var bytes = new BtfBuilder().Build();
        bytes[0] = 0xeb; bytes[1] = 0x9f; // the magic written big-endian
        Assert.Contains("big-endian", Assert.Throws<ObjectFileException>(() => BtfSpec.Parse(bytes)).Message);
        Assert.Throws<ObjectFileException>(() => BtfSpec.Parse(new byte[10]));
    }
}

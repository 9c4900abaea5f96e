using System.Buffers.Binary;
using System.Text;
using SharpBpf.Asm;
using SharpBpf.Btf;
using SharpBpf.Elf;
using SharpBpf.Platform;

namespace SharpBpf.Objects;

/// <summary>The work of <see cref="ObjectFile.Read"/>: one instance per object.</summary>
internal sealed class ObjectReader
{
    /// <summary>The kernel's limit on a program's length (BPF_COMPLEXITY_LIMIT_INSNS); a linked program may not exceed it.</summary>
    private const int MaxProgramSlots = 1_000_000;

    /// <summary>Bound on all linked programs together, so a hostile file cannot make linking explode.</summary>
    private const long MaxTotalSlots = 16_000_000;

    /// <summary>Largest global-data section accepted (.bss has no bytes in the file, so its size is a bare claim).</summary>
    private const ulong MaxGlobalDataSize = 64UL * 1024 * 1024;

    /// <summary>BPF_F_RDONLY_PROG: programs may only read the map (.rodata).</summary>
    private const uint MapFlagReadOnlyProgram = 1u << 7;

    private const int KernelNameLength = 16; // BPF_OBJ_NAME_LEN, including the NUL

    private readonly ElfFile elf;
    private readonly string objectName;
    private readonly CollectionSpec spec = new();
    private readonly Dictionary<(int Section, ulong Offset), MapSpec> mapsByLocation = [];
    private readonly Dictionary<int, MapSpec> globalData = [];
    private readonly HashSet<string> mapNames = [];
    private readonly Dictionary<int, List<Function>> functionsBySection = [];
    private BtfSpec? btf;
    private BtfExt? ext;

    public ObjectReader(ReadOnlyMemory<byte> data, string objectName)
    {
        elf = ElfFile.Parse(data);
        this.objectName = objectName;
    }

    public CollectionSpec Read()
    {
        spec.ObjectName = objectName;
        ReadBtf();
        ReadLicenseAndVersion();
        ReadGlobalData();
        ReadExterns();
        ReadLegacyMaps();
        ReadBtfMaps();
        ReadCode();
        LinkPrograms();
        return spec;
    }

    private void ReadBtf()
    {
        var section = elf.FindSection(".BTF");
        if (section is null)
            return;
        btf = BtfSpec.Parse(elf.GetContents(section).Span);
        FixDataSections(btf);
        spec.Btf = btf;
        var extSection = elf.FindSection(".BTF.ext");
        if (extSection is not null)
            spec.BtfExt = ext = BtfExt.Parse(elf.GetContents(extSection).Span, btf);
    }

    /// <summary>
    /// clang leaves DATASEC sizes (and with them variable offsets) at 0; the kernel refuses that. As libbpf does, take
    /// the size from the ELF section and each non-static variable's offset from its symbol.
    /// </summary>
    private void FixDataSections(BtfSpec types)
    {
        foreach (var type in types.Types)
        {
            if (type is not BtfDataSec datasec || datasec.Size != 0)
                continue;
            var section = elf.FindSection(datasec.Name);
            if (section is null)
                continue; // extern sections (.kconfig, .ksyms) have no ELF section; the loader deals with them
            if (section.Size > uint.MaxValue)
                throw new ObjectFileException($"section is too large for BTF ({section.Size} bytes)", section.Name);
            var fixedVars = new List<BtfVarSecInfo>(datasec.Variables.Count);
            foreach (var v in datasec.Variables)
            {
                if (types[v.Type] is not BtfVar variable)
                    throw new ObjectFileException($"DATASEC '{datasec.Name}' entry refers to type {v.Type}, which is not a VAR", ".BTF");
                if (variable.Linkage is BtfLinkage.Static or BtfLinkage.Extern)
                {
                    fixedVars.Add(v);
                    continue;
                }
                var symbol = FindSymbol(variable.Name, section.Index)
                    ?? throw new ObjectFileException($"DATASEC variable has no ELF symbol in section '{section.Name}'", ".BTF", variable.Name);
                if (symbol.Value > uint.MaxValue)
                    throw new ObjectFileException("variable offset does not fit 32 bits", section.Name, variable.Name);
                fixedVars.Add(v with { Offset = (uint)symbol.Value });
            }
            types.FixDataSection(datasec, (uint)section.Size, fixedVars);
        }
    }

    private Dictionary<(int Section, string Name), ElfSymbol>? symbolIndex;

    /// <summary>The first named symbol (not a section symbol) with this name in this section, or null.</summary>
    private ElfSymbol? FindSymbol(string name, int sectionIndex)
    {
        if (symbolIndex is null)
        {
            symbolIndex = [];
            foreach (var s in elf.Symbols)
            {
                if (s.Type != ElfSymbolType.Section && s.Name.Length > 0)
                    symbolIndex.TryAdd((s.SectionIndex, s.Name), s);
            }
        }
        return symbolIndex.TryGetValue((sectionIndex, name), out var found) ? found : null;
    }

    private void ReadLicenseAndVersion()
    {
        var license = elf.FindSection("license");
        if (license is not null)
        {
            var bytes = elf.GetContents(license).Span;
            int end = bytes.IndexOf((byte)0);
            spec.License = Encoding.UTF8.GetString(end >= 0 ? bytes[..end] : bytes);
        }
        var version = elf.FindSection("version");
        if (version is not null)
        {
            if (version.Size != 4)
                throw new ObjectFileException($"size {version.Size} is not 4 bytes", version.Name);
            spec.KernelVersion = BinaryPrimitives.ReadUInt32LittleEndian(elf.GetContents(version).Span);
        }
    }

    private static bool IsGlobalDataName(string name, out bool readOnly)
    {
        readOnly = name == ".rodata" || name.StartsWith(".rodata.", StringComparison.Ordinal);
        return readOnly || name == ".data" || name.StartsWith(".data.", StringComparison.Ordinal)
            || name == ".bss" || name.StartsWith(".bss.", StringComparison.Ordinal);
    }

    private void ReadGlobalData()
    {
        foreach (var section in elf.Sections)
        {
            if (section.Type is not (ElfSectionType.ProgBits or ElfSectionType.NoBits) || section.IsExecutable
                || !IsGlobalDataName(section.Name, out bool readOnly) || section.Size == 0)
                continue;
            if (section.Size > MaxGlobalDataSize)
                throw new ObjectFileException($"global data of {section.Size} bytes is more than the {MaxGlobalDataSize}-byte limit", section.Name);
            var map = new MapSpec
            {
                Name = section.Name,
                KernelName = GlobalDataKernelName(section.Name),
                SectionName = section.Name,
                Type = MapType.Array,
                KeySize = 4,
                ValueSize = (uint)section.Size,
                MaxEntries = 1,
                Flags = readOnly ? MapFlagReadOnlyProgram : 0,
                Freeze = readOnly,
                InitialValue = section.Type == ElfSectionType.NoBits ? new byte[section.Size] : elf.GetContents(section).ToArray(),
                BtfValueTypeId = btf?.FindByName(section.Name, BtfKind.DataSec)?.Id ?? 0,
            };
            if (!mapNames.Add(map.Name))
                throw new ObjectFileException("two global-data sections have this name", section.Name);
            spec.Maps.Add(map);
            globalData[section.Index] = map;
        }
    }

    private readonly Dictionary<string, ExternSpec> externs = new(StringComparer.Ordinal);

    /// <summary>The map that holds the values of <c>__kconfig</c> externs (libbpf's name for its section).</summary>
    public const string KconfigSection = ".kconfig";
    private const string KsymsSection = ".ksyms";

    /// <summary>
    /// Collects <c>__kconfig</c> and <c>__ksym</c> externs from the BTF DATASECs clang makes for them. Kconfig values
    /// are laid out as libbpf lays them out (by alignment, largest first, then by size, smallest first, then by name) in a read-only
    /// <c>.kconfig</c> array map whose DATASEC gets its size, offsets and linkage fixed so the kernel accepts it.
    /// </summary>
    private void ReadExterns()
    {
        if (btf is null)
            return;
        var undefined = new Dictionary<string, ElfSymbol>(StringComparer.Ordinal);
        foreach (var symbol in elf.Symbols)
        {
            if (symbol.IsUndefined && symbol.Name.Length > 0 && symbol.Type != ElfSymbolType.Section)
                undefined.TryAdd(symbol.Name, symbol);
        }
        if (undefined.Count == 0)
            return;
        foreach (var type in btf.Types)
        {
            if (type is not BtfDataSec { Name: KconfigSection or KsymsSection } datasec)
                continue;
            var kconfig = new List<(ExternSpec Extern, uint Align, BtfVar Var, BtfVarSecInfo Entry)>();
            foreach (var entry in datasec.Variables)
            {
                var t = btf[entry.Type];
                if (t is not (BtfVar { Linkage: BtfLinkage.Extern } or BtfFunc { Linkage: BtfLinkage.Extern }))
                    throw new ObjectFileException($"DATASEC '{datasec.Name}' holds {t}, which is not an extern", ".BTF");
                if (!undefined.TryGetValue(t.Name, out var symbol))
                    continue; // declared but never used: clang keeps no symbol for it
                bool weak = symbol.Binding == ElfSymbolBinding.Weak;
                if (datasec.Name == KsymsSection)
                {
                    if (t is BtfFunc func)
                        externs[t.Name] = new ExternSpec { Name = t.Name, Kind = ExternKind.KernelFunction, Weak = weak, BtfId = t.Id, TypeId = func.Prototype };
                    else
                        externs[t.Name] = new ExternSpec { Name = t.Name, Kind = ExternKind.KernelVariable, Weak = weak, BtfId = t.Id, TypeId = SkipModifiers(((BtfVar)t).Type) };
                    continue;
                }
                if (t is not BtfVar variable)
                    throw new ObjectFileException("a __kconfig extern must be a variable, not a function", KconfigSection, t.Name);
                uint size = KconfigSize(variable, out uint align);
                kconfig.Add((new ExternSpec { Name = t.Name, Kind = ExternKind.KernelConfig, Weak = weak, BtfId = t.Id, TypeId = SkipModifiers(variable.Type), Size = size }, align, variable, entry));
            }
            if (kconfig.Count == 0)
                continue;
            uint offset = 0;
            var fixedVars = new List<BtfVarSecInfo>();
            foreach (var (e, align, variable, entry) in kconfig.OrderByDescending(k => k.Align).ThenBy(k => k.Extern.Size).ThenBy(k => k.Extern.Name, StringComparer.Ordinal))
            {
                offset = (offset + align - 1) / align * align;
                if (offset + (ulong)e.Size > MaxKconfigString)
                    throw new ObjectFileException($"the kconfig externs take more than {MaxKconfigString} bytes", KconfigSection, e.Name);
                externs[e.Name] = e with { Offset = offset };
                fixedVars.Add(entry with { Offset = offset, Size = e.Size });
                btf.SetVarLinkage(variable, BtfLinkage.Global);
                offset += e.Size;
            }
            // Entries of unused externs keep offset 0 and their size: they overlap used ones, which the kernel accepts.
            foreach (var entry in datasec.Variables)
                if (!fixedVars.Exists(f => f.Type == entry.Type))
                {
                    fixedVars.Add(entry with { Offset = 0 });
                    if (btf[entry.Type] is BtfVar unused)
                        btf.SetVarLinkage(unused, BtfLinkage.Global);
                }
            btf.FixDataSection(datasec, offset, fixedVars);
            var map = new MapSpec
            {
                Name = KconfigSection,
                KernelName = GlobalDataKernelName(KconfigSection),
                SectionName = KconfigSection,
                Type = MapType.Array,
                KeySize = 4,
                ValueSize = offset,
                MaxEntries = 1,
                Flags = MapFlagReadOnlyProgram,
                Freeze = true,
                InitialValue = new byte[offset],
                BtfValueTypeId = datasec.Id,
            };
            if (!mapNames.Add(map.Name))
                throw new ObjectFileException("the object has a section named like the kconfig map", KconfigSection);
            spec.Maps.Add(map);
        }
        spec.Externs.AddRange(externs.Values.OrderBy(e => e.Name, StringComparer.Ordinal));
    }

    /// <summary>A bound on one kconfig char array (kernel config strings are short), so a hostile file cannot ask for gigabytes.</summary>
    private const uint MaxKconfigString = 64 * 1024;

    private uint SkipModifiers(uint id)
    {
        for (int depth = 0; depth < BtfSpec.MaxResolveDepth; depth++)
        {
            if (btf![id] is not BtfReference { Kind: not BtfKind.Pointer } r)
                return id;
            id = r.Type;
        }
        throw new ObjectFileException($"type {id}: more than {BtfSpec.MaxResolveDepth} typedefs/modifiers (a loop?)", ".BTF");
    }

    /// <summary>The size and alignment of a kconfig value: bool, char, tristate (enum), integers and char arrays, as libbpf allows.</summary>
    private uint KconfigSize(BtfVar variable, out uint align)
    {
        var t = btf![SkipModifiers(variable.Type)];
        switch (t)
        {
            case BtfInt { Size: 1 or 2 or 4 or 8 } i:
                align = i.Size;
                return i.Size;
            case BtfEnum { Size: 4 or 8 } e:
                align = e.Size;
                return e.Size;
            case BtfArray a when btf[SkipModifiers(a.ElementType)] is BtfInt { Size: 1 } && a.Count > 0 && a.Count <= MaxKconfigString:
                align = 1;
                return a.Count;
            default:
                throw new ObjectFileException($"type {t} is not a kconfig type (bool, char, tristate, integer or char array)", KconfigSection, variable.Name);
        }
    }

    /// <summary>libbpf's internal map name: object-name prefix (up to 8 characters) + section name, at most 15 characters.</summary>
    private string GlobalDataKernelName(string sectionName)
    {
        int suffixLength = Math.Max(7, sectionName.Length);
        int prefixLength = sectionName.IndexOf('.', 1) >= 0 ? 0 : Math.Max(0, Math.Min(KernelNameLength - suffixLength - 1, objectName.Length));
        var name = (objectName[..prefixLength] + sectionName);
        if (name.Length > KernelNameLength - 1)
            name = name[..(KernelNameLength - 1)];
        var chars = name.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
        {
            if (!char.IsAsciiLetterOrDigit(chars[i]) && chars[i] != '_' && chars[i] != '.')
                chars[i] = '_';
        }
        return new string(chars);
    }

    /// <summary>The "maps" section: an array of struct bpf_map_def, one per symbol.</summary>
    private void ReadLegacyMaps()
    {
        var section = elf.FindSection("maps");
        if (section is null || section.Type != ElfSectionType.ProgBits)
            return;
        var symbols = elf.Symbols
            .Where(s => s.SectionIndex == section.Index && s.Type is ElfSymbolType.Object or ElfSymbolType.NoType && s.Name.Length > 0)
            .OrderBy(s => s.Value)
            .ToList();
        if (symbols.Count == 0)
        {
            if (section.Size != 0)
                throw new ObjectFileException("legacy maps section has data but no map symbols", section.Name);
            return;
        }
        if (section.Size % (ulong)symbols.Count != 0)
            throw new ObjectFileException($"size {section.Size} is not a multiple of the {symbols.Count} map definitions", section.Name);
        ulong defSize = section.Size / (ulong)symbols.Count;
        if (defSize < 16)
            throw new ObjectFileException($"map definitions of {defSize} bytes are too small for struct bpf_map_def", section.Name);
        var bytes = elf.GetContents(section).Span;
        foreach (var symbol in symbols)
        {
            if (symbol.Value > section.Size || defSize > section.Size - symbol.Value)
                throw new ObjectFileException($"map definition at {symbol.Value} runs past the end of the section", section.Name, symbol.Name, (long)symbol.Value);
            var def = bytes.Slice((int)symbol.Value, (int)defSize);
            var map = new MapSpec
            {
                Name = symbol.Name,
                KernelName = symbol.Name,
                SectionName = section.Name,
                Type = (MapType)LegacyField(def, 0),
                KeySize = LegacyField(def, 1),
                ValueSize = LegacyField(def, 2),
                MaxEntries = LegacyField(def, 3),
                Flags = LegacyField(def, 4),
            };
            AddMap(map, section, symbol.Value);
        }
    }

    private static uint LegacyField(ReadOnlySpan<byte> def, int i) =>
        (i + 1) * 4 <= def.Length ? BinaryPrimitives.ReadUInt32LittleEndian(def[(i * 4)..]) : 0;

    private void AddMap(MapSpec map, ElfSection section, ulong offset)
    {
        if (!mapNames.Add(map.Name))
            throw new ObjectFileException("a map with this name is declared twice", section.Name, map.Name, (long)offset);
        if (!mapsByLocation.TryAdd((section.Index, offset), map))
            throw new ObjectFileException("two maps share one offset", section.Name, map.Name, (long)offset);
        spec.Maps.Add(map);
    }

    /// <summary>BTF-defined maps: each variable of the ".maps" DATASEC is a struct whose members encode the map's attributes.</summary>
    private void ReadBtfMaps()
    {
        var section = elf.FindSection(".maps");
        if (section is null)
            return;
        if (btf is null)
            throw new ObjectFileException("BTF-defined maps need a .BTF section, and this object has none", section.Name);
        if (btf.FindByName(".maps", BtfKind.DataSec) is not BtfDataSec datasec)
            throw new ObjectFileException("no DATASEC '.maps' in BTF", section.Name);
        var definitions = new List<(MapSpec Map, ulong Offset, ulong Size, ulong ValuesOffset)>();
        foreach (var v in datasec.Variables)
        {
            if (btf[v.Type] is not BtfVar variable)
                throw new ObjectFileException($"DATASEC entry refers to type {v.Type}, which is not a VAR", section.Name);
            var symbol = FindSymbol(variable.Name, section.Index);
            ulong offset = symbol?.Value ?? v.Offset;
            // With initialised 'values' the variable is longer than its struct (a flexible array): the symbol says how long.
            ulong size = Math.Max(symbol?.Size ?? 0, v.Size);
            if (btf.SkipQualifiers(variable.Type) is not BtfComposite { Kind: BtfKind.Struct } def)
                throw new ObjectFileException("a map definition must be a struct", section.Name, variable.Name);
            var map = ParseMapDefinition(def, variable.Name, section.Name, inner: false, out ulong valuesOffset);
            AddMap(map, section, offset);
            definitions.Add((map, offset, Math.Max(size, def.Size), valuesOffset));
        }

        definitions.Sort((a, b) => a.Offset.CompareTo(b.Offset));

        // .values initialisers of map-in-map and program arrays: a relocation per filled slot, against the map or program.
        foreach (var rel in RelocationsFor(section))
        {
            var symbol = elf.Symbols[rel.SymbolIndex];
            var owner = FindDefinition(definitions, rel.Offset);
            if (owner.Map is null)
                throw new ObjectFileException("relocation outside every map definition", section.Name, symbol.Name, (long)rel.Offset);
            if (owner.ValuesOffset == ulong.MaxValue || rel.Offset < owner.Offset + owner.ValuesOffset || (rel.Offset - owner.Offset - owner.ValuesOffset) % 8 != 0)
                throw new ObjectFileException("relocation is not on a slot of the map's 'values'", section.Name, owner.Map.Name, (long)rel.Offset);
            if (rel.Type != ElfRelocationType.BpfAbs64)
                throw new ObjectFileException($"relocation type {rel.Type} is not valid for 'values'", section.Name, owner.Map.Name, (long)rel.Offset);
            ulong key = (rel.Offset - owner.Offset - owner.ValuesOffset) / 8;
            if (key >= owner.Map.MaxEntries)
                throw new ObjectFileException($"'values' slot {key} is beyond max_entries {owner.Map.MaxEntries}", section.Name, owner.Map.Name, (long)rel.Offset);
            if (symbol.Name.Length == 0)
                throw new ObjectFileException("'values' slot refers to an unnamed symbol", section.Name, owner.Map.Name, (long)rel.Offset);
            owner.Map.InitialReferences.Add(new MapSlotReference((uint)key, symbol.Name));
        }
    }

    /// <summary>The map definition (sorted by offset) whose bytes hold a section offset, or default.</summary>
    private static (MapSpec Map, ulong Offset, ulong Size, ulong ValuesOffset) FindDefinition(List<(MapSpec Map, ulong Offset, ulong Size, ulong ValuesOffset)> sorted, ulong offset)
    {
        int lo = 0, hi = sorted.Count - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (sorted[mid].Offset <= offset)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return found >= 0 && offset - sorted[found].Offset < sorted[found].Size ? sorted[found] : default;
    }

    private MapSpec ParseMapDefinition(BtfComposite def, string name, string sectionName, bool inner, out ulong valuesOffset)
    {
        var types = btf!;
        var map = new MapSpec { Name = name, KernelName = name, SectionName = sectionName };
        valuesOffset = ulong.MaxValue;
        uint? keySize = null, valueSize = null;
        foreach (var member in def.Members)
        {
            switch (member.Name)
            {
                case "type": map.Type = (MapType)UIntField(member, name, sectionName); break;
                case "max_entries": map.MaxEntries = UIntField(member, name, sectionName); break;
                case "map_flags": map.Flags = UIntField(member, name, sectionName); break;
                case "numa_node": map.NumaNode = UIntField(member, name, sectionName); break;
                case "map_extra": map.MapExtra = UIntField(member, name, sectionName); break;
                case "key_size": keySize = Agree(keySize, UIntField(member, name, sectionName), "key", name, sectionName); break;
                case "value_size": valueSize = Agree(valueSize, UIntField(member, name, sectionName), "value", name, sectionName); break;
                case "key":
                    {
                        uint type = PointeeField(member, name, sectionName);
                        keySize = Agree(keySize, SizeField(type, name, sectionName), "key", name, sectionName);
                        map.BtfKeyTypeId = type;
                        break;
                    }
                case "value":
                    {
                        uint type = PointeeField(member, name, sectionName);
                        valueSize = Agree(valueSize, SizeField(type, name, sectionName), "value", name, sectionName);
                        map.BtfValueTypeId = type;
                        break;
                    }
                case "pinning":
                    {
                        uint pinning = UIntField(member, name, sectionName);
                        if (pinning > 1)
                            throw new ObjectFileException($"pinning {pinning} is not supported (0 none, 1 by name)", sectionName, name);
                        map.Pinning = (MapPinning)pinning;
                        break;
                    }
                case "values":
                    {
                        if (inner)
                            throw new ObjectFileException("an inner map cannot have 'values'", sectionName, name);
                        if (member.BitOffset % 64 != 0)
                            throw new ObjectFileException("'values' is not 8-byte aligned", sectionName, name);
                        valuesOffset = member.BitOffset / 8;
                        if (types.SkipQualifiers(member.Type) is not BtfArray array)
                            throw new ObjectFileException("'values' must be an array", sectionName, name);
                        if (types.SkipQualifiers(array.ElementType) is not BtfReference { Kind: BtfKind.Pointer } pointer)
                            throw new ObjectFileException("'values' must be an array of pointers", sectionName, name);
                        var target = types.SkipQualifiers(pointer.Type);
                        if (target is BtfComposite { Kind: BtfKind.Struct } innerDef)
                        {
                            map.InnerMap = ParseMapDefinition(innerDef, name + ".inner", sectionName, inner: true, out _);
                            valueSize = Agree(valueSize, 4, "value", name, sectionName);
                        }
                        else if (target is BtfFuncProto)
                        {
                            valueSize = Agree(valueSize, 4, "value", name, sectionName);
                        }
                        else
                        {
                            throw new ObjectFileException("'values' must point to map definitions or functions", sectionName, name);
                        }
                        break;
                    }
                default:
                    throw new ObjectFileException($"unknown map attribute '{member.Name}'", sectionName, name);
            }
        }
        map.KeySize = keySize ?? 0;
        map.ValueSize = valueSize ?? 0;
        if (map.BtfValueTypeId != 0)
            map.SpinLockOffset = SpinLockOffset(types, map.BtfValueTypeId);
        return map;
    }

    /// <summary>The offset of the one struct bpf_spin_lock in a value type (searched through nested structs and
    /// arrays of one element, as the kernel's btf_find_field), or null when there is none or more than one.</summary>
    private static int? SpinLockOffset(BtfSpec types, uint valueType)
    {
        var found = new List<long>();
        void Walk(uint id, long offset, int depth)
        {
            if (depth > 32 || found.Count > 1)
                return;
            switch (types.SkipQualifiers(id))
            {
                case BtfComposite { Kind: BtfKind.Struct, Name: "bpf_spin_lock" }:
                    found.Add(offset);
                    break;
                case BtfComposite { Kind: BtfKind.Struct } composite:
                    foreach (var m in composite.Members)
                    {
                        if (m.BitfieldSize == 0 && m.BitOffset % 8 == 0)
                            Walk(m.Type, offset + m.BitOffset / 8, depth + 1);
                    }
                    break;
                case BtfArray { Count: 1 } array:
                    Walk(array.ElementType, offset, depth + 1);
                    break;
            }
        }
        try
        {
            Walk(valueType, 0, 0);
        }
        catch (ObjectFileException)
        {
            return null;
        }
        return found.Count == 1 ? (int)found[0] : null;
    }

    private static uint? Agree(uint? existing, ulong value, string what, string map, string section)
    {
        if (value > uint.MaxValue)
            throw new ObjectFileException($"{what} size {value} does not fit 32 bits", section, map);
        if (existing is not null && existing != value)
            throw new ObjectFileException($"{what} size given twice and differently ({existing} and {value})", section, map);
        return (uint)value;
    }

    private ulong SizeField(uint type, string map, string section)
    {
        try
        {
            return btf!.SizeOf(type);
        }
        catch (ObjectFileException e)
        {
            throw new ObjectFileException($"cannot size key/value type: {e.Message}", section, map, innerException: e);
        }
    }

    /// <summary><c>__uint(name, N)</c> is <c>int (*name)[N]</c>: a pointer to an array whose length is the value.</summary>
    private uint UIntField(BtfMember member, string map, string section)
    {
        var types = btf!;
        var t = types.SkipQualifiers(member.Type);
        if (t is BtfReference { Kind: BtfKind.Pointer } pointer && types.SkipQualifiers(pointer.Type) is BtfArray array)
            return array.Count;
        if (t is BtfEnum { Values.Count: > 0 } e)
            return (uint)e.Values[0].Value;
        throw new ObjectFileException($"attribute '{member.Name}' is not written as __uint(name, value)", section, map);
    }

    /// <summary><c>__type(name, T)</c> is <c>T *name</c>.</summary>
    private uint PointeeField(BtfMember member, string map, string section)
    {
        if (btf!.SkipQualifiers(member.Type) is BtfReference { Kind: BtfKind.Pointer } pointer)
            return pointer.Type;
        throw new ObjectFileException($"attribute '{member.Name}' is not written as __type(name, T)", section, map);
    }

    private IEnumerable<ElfRelocation> RelocationsFor(ElfSection target)
    {
        foreach (var s in elf.RelocationSectionsFor(target))
        {
            foreach (var r in elf.ReadRelocations(s))
                yield return r;
        }
    }

    // ---------------------------------------------------------------- code

    /// <summary>A function in a code section: a program, or a subprogram that programs call.</summary>
    private sealed class Function(string name, ElfSection section, int start, List<Instruction> instructions, int[] slotToIndex, int[] indexToSlot)
    {
        public string Name { get; } = name;
        public ElfSection Section { get; } = section;

        /// <summary>First raw slot in the section.</summary>
        public int Start { get; } = start;
        public int RawLength => SlotToIndex.Length;
        public List<Instruction> Instructions { get; } = instructions;

        /// <summary>Raw slot (from <see cref="Start"/>) to instruction index; -1 for the second slot of an lddw.</summary>
        public int[] SlotToIndex { get; } = slotToIndex;
        public int[] IndexToSlot { get; } = indexToSlot;

        /// <summary>Instruction index -> the raw slot (in <c>Section</c>) a call or function pointer goes to.</summary>
        public Dictionary<int, (ElfSection Section, long Slot)> Targets { get; } = [];
        public bool IsProgram { get; init; }
    }

    private void ReadCode()
    {
        foreach (var section in elf.Sections)
        {
            if (!section.IsExecutable || section.Size == 0)
                continue;
            if (section.Size % RawInstruction.Size != 0)
                throw new ObjectFileException($"code size {section.Size} is not a multiple of 8", section.Name);
            var functions = SplitFunctions(section);
            functionsBySection[section.Index] = functions;
            if (functions.Count == 0)
                continue;
            foreach (var rel in RelocationsFor(section))
                ApplyRelocation(section, functions, rel);
            foreach (var f in functions)
                ResolveLocalTargets(f);
        }
    }

    private Dictionary<int, List<ElfSymbol>>? functionSymbols;

    /// <summary>Function symbols by section, each list sorted by address (stable: equal addresses keep symbol order).</summary>
    private List<ElfSymbol> FunctionSymbols(int sectionIndex)
    {
        if (functionSymbols is null)
        {
            functionSymbols = [];
            foreach (var s in elf.Symbols)
            {
                if (s.Type != ElfSymbolType.Function)
                    continue;
                if (!functionSymbols.TryGetValue(s.SectionIndex, out var list))
                    functionSymbols[s.SectionIndex] = list = [];
                list.Add(s);
            }
            foreach (var list in functionSymbols.Values)
            {
                if (!IsSortedByValue(list))
                    list.Sort((a, b) => a.Value != b.Value ? a.Value.CompareTo(b.Value) : a.Index.CompareTo(b.Index));
            }
        }
        return functionSymbols.TryGetValue(sectionIndex, out var found) ? found : [];
    }

    private static bool IsSortedByValue(List<ElfSymbol> symbols)
    {
        for (int i = 1; i < symbols.Count; i++)
        {
            if (symbols[i - 1].Value > symbols[i].Value)
                return false;
        }
        return true;
    }

    private List<Function> SplitFunctions(ElfSection section)
    {
        bool isText = section.Name == ".text";
        long slots = (long)(section.Size / RawInstruction.Size);
        var symbols = FunctionSymbols(section.Index);
        var result = new List<Function>(symbols.Count);
        var code = elf.GetContents(section);
        if (symbols.Count == 0)
        {
            // No function symbols (hand-written or stripped objects): the whole section is one program named after it.
            if (!isText)
                result.Add(Decode(section, code, section.Name, 0, slots, isProgram: true));
            return result;
        }
        for (int i = 0; i < symbols.Count; i++)
        {
            var s = symbols[i];
            if (s.Value % RawInstruction.Size != 0 || s.Size % RawInstruction.Size != 0)
                throw new ObjectFileException($"function at {s.Value}, size {s.Size} is not 8-byte aligned", section.Name, s.Name, (long)Math.Min(s.Value, long.MaxValue));
            if (s.Value >= section.Size)
                throw new ObjectFileException("function starts past the end of the section", section.Name, s.Name, (long)Math.Min(s.Value, long.MaxValue));
            long start = (long)(s.Value / RawInstruction.Size);
            long end = s.Size != 0 ? start + (long)Math.Min(s.Size / RawInstruction.Size, (ulong)slots) : (i + 1 < symbols.Count ? (long)(symbols[i + 1].Value / RawInstruction.Size) : slots);
            if (end > slots)
                throw new ObjectFileException($"function of {s.Size} bytes runs past the end of the section", section.Name, s.Name, (long)s.Value);
            if (result.Count > 0 && start < result[^1].Start + result[^1].RawLength)
                throw new ObjectFileException($"function overlaps '{result[^1].Name}'", section.Name, s.Name, (long)s.Value);
            if (end <= start)
                throw new ObjectFileException("function is empty", section.Name, s.Name, (long)s.Value);
            if (s.Name.Length == 0)
                throw new ObjectFileException("function has no name", section.Name, offset: (long)s.Value);
            result.Add(Decode(section, code, s.Name, start, end, isProgram: !isText));
        }
        return result;
    }

    private static Function Decode(ElfSection section, ReadOnlyMemory<byte> code, string name, long start, long end, bool isProgram)
    {
        List<Instruction> instructions;
        try
        {
            instructions = InstructionCodec.Decode(code.Span[(int)(start * RawInstruction.Size)..(int)(end * RawInstruction.Size)]);
        }
        catch (InstructionException e)
        {
            throw new ObjectFileException(e.Message, section.Name, name, (start + e.RawIndex) * RawInstruction.Size, e);
        }
        var slotToIndex = new int[end - start];
        var indexToSlot = new int[instructions.Count];
        int slot = 0;
        for (int i = 0; i < instructions.Count; i++)
        {
            indexToSlot[i] = slot;
            slotToIndex[slot++] = i;
            if (instructions[i].IsLoadImmediate64)
                slotToIndex[slot++] = -1;
        }
        return new Function(name, section, (int)start, instructions, slotToIndex, indexToSlot) { IsProgram = isProgram };
    }

    private static Function? FindFunction(List<Function> functions, long slot)
    {
        int lo = 0, hi = functions.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var f = functions[mid];
            if (slot < f.Start)
                hi = mid - 1;
            else if (slot >= f.Start + f.RawLength)
                lo = mid + 1;
            else
                return f;
        }
        return null;
    }

    private void ApplyRelocation(ElfSection section, List<Function> functions, ElfRelocation rel)
    {
        var symbol = elf.Symbols[rel.SymbolIndex];
        string symbolName = symbol.Name.Length > 0 ? symbol.Name : elf.SectionOf(symbol)?.Name ?? $"#{symbol.Index}";
        long at = (long)Math.Min(rel.Offset, long.MaxValue);
        if (rel.Offset % RawInstruction.Size != 0 || rel.Offset >= section.Size)
            throw new ObjectFileException("relocation offset is not on an instruction of the section", section.Name, symbolName, at);
        long slot = (long)(rel.Offset / RawInstruction.Size);
        var f = FindFunction(functions, slot)
            ?? throw new ObjectFileException("relocation is outside every function", section.Name, symbolName, at);
        int index = f.SlotToIndex[slot - f.Start];
        if (index < 0)
            throw new ObjectFileException("relocation points at the second half of an lddw", section.Name, symbolName, at);
        var insn = f.Instructions[index];
        var target = elf.SectionOf(symbol);

        switch (rel.Type)
        {
            case ElfRelocationType.Bpf64:
                if (!insn.IsLoadImmediate64)
                    throw new ObjectFileException($"R_BPF_64_64 on instruction 0x{insn.OpCode.Value:x2}, which is not an lddw", section.Name, symbolName, at);
                if (symbol.IsUndefined && externs.TryGetValue(symbolName, out var ext) && ext.Kind == ExternKind.KernelConfig)
                {
                    // A __kconfig extern: its value in the .kconfig map.
                    f.Instructions[index] = insn with { Src = (Register)LoadImmediateSource.MapValue, Constant = ((long)ext.Offset + insn.Immediate) << 32, Reference = KconfigSection };
                    return;
                }
                if (symbol.IsUndefined)
                {
                    // An extern (__ksym): the loader finds the kernel variable's BTF id.
                    f.Instructions[index] = insn with { Src = (Register)LoadImmediateSource.BtfId, Constant = 0, Reference = symbolName };
                    return;
                }
                if (target is null)
                    throw new ObjectFileException("lddw refers to a symbol with no section", section.Name, symbolName, at);
                ulong offset = symbol.Type == ElfSymbolType.Section ? (ulong)(uint)insn.Immediate : symbol.Value;
                if (mapsByLocation.TryGetValue((target.Index, offset), out var map))
                {
                    f.Instructions[index] = insn with { Src = (Register)LoadImmediateSource.MapFd, Constant = 0, Reference = map.Name };
                    return;
                }
                if (globalData.TryGetValue(target.Index, out var data))
                {
                    long varOffset = (long)Math.Min(symbol.Value, int.MaxValue) + insn.Immediate;
                    if (varOffset < 0 || varOffset > data.ValueSize)
                        throw new ObjectFileException($"variable offset {varOffset} is outside the {data.ValueSize}-byte section '{data.Name}'", section.Name, symbolName, at);
                    f.Instructions[index] = insn with { Src = (Register)LoadImmediateSource.MapValue, Constant = varOffset << 32, Reference = data.Name };
                    return;
                }
                if (target.IsExecutable)
                {
                    long bytes = (long)Math.Min(symbol.Value, int.MaxValue) + insn.Immediate;
                    if (bytes < 0 || bytes % RawInstruction.Size != 0)
                        throw new ObjectFileException($"function pointer to byte {bytes} is not on an instruction", section.Name, symbolName, at);
                    f.Targets[index] = (target, bytes / RawInstruction.Size);
                    f.Instructions[index] = insn with { Src = (Register)LoadImmediateSource.Function };
                    return;
                }
                if (target.Name is "maps" or ".maps")
                    throw new ObjectFileException($"no map is declared at offset {offset}", section.Name, symbolName, at);
                throw new ObjectFileException($"lddw refers to section '{target.Name}', which holds no map, global data or code", section.Name, symbolName, at);

            case ElfRelocationType.Bpf32:
                if (insn.OpCode.Value != 0x85)
                    throw new ObjectFileException($"R_BPF_64_32 on instruction 0x{insn.OpCode.Value:x2}, which is not a call", section.Name, symbolName, at);
                if (symbol.IsUndefined)
                {
                    // A kernel function (__ksym): the loader finds its BTF id.
                    f.Instructions[index] = insn with { Src = (Register)CallKind.Kfunc, Constant = 0, Reference = symbolName };
                    return;
                }
                if ((byte)insn.Src != (byte)CallKind.Local)
                    throw new ObjectFileException($"call relocation on a call with src {(byte)insn.Src}, not a bpf-to-bpf call", section.Name, symbolName, at);
                if (target is null || !target.IsExecutable)
                    throw new ObjectFileException("call to a symbol that is not in a code section", section.Name, symbolName, at);
                if (symbol.Value % RawInstruction.Size != 0)
                    throw new ObjectFileException("call target is not 8-byte aligned", section.Name, symbolName, at);
                // As libbpf: the target slot is the symbol's slot + imm + 1 (global functions: imm = -1; static ones via
                // the section symbol: imm carries the slot).
                f.Targets[index] = (target, (long)Math.Min(symbol.Value / RawInstruction.Size, int.MaxValue) + insn.Immediate + 1);
                return;

            case ElfRelocationType.None:
                return;

            default:
                throw new ObjectFileException($"relocation type {rel.Type} is not valid in code", section.Name, symbolName, at);
        }
    }

    /// <summary>bpf-to-bpf calls and function pointers with no relocation go to a slot of their own section.</summary>
    private static void ResolveLocalTargets(Function f)
    {
        for (int i = 0; i < f.Instructions.Count; i++)
        {
            if (f.Targets.ContainsKey(i))
                continue;
            var insn = f.Instructions[i];
            bool call = insn.OpCode.Value == 0x85 && (byte)insn.Src == (byte)CallKind.Local;
            bool pointer = insn.IsLoadImmediate64 && (byte)insn.Src == (byte)LoadImmediateSource.Function;
            if (call || pointer)
                f.Targets[i] = (f.Section, (long)f.Start + f.IndexToSlot[i] + insn.Immediate + 1);
        }
    }

    private void LinkPrograms()
    {
        long total = 0;
        foreach (var (sectionIndex, functions) in functionsBySection.OrderBy(p => p.Key))
        {
            foreach (var f in functions)
            {
                if (!f.IsProgram)
                    continue;
                var program = Link(f);
                total += InstructionCodec.RawLength(program.Instructions);
                if (total > MaxTotalSlots)
                    throw new ObjectFileException($"linked programs exceed {MaxTotalSlots} instructions in all", f.Section.Name, f.Name);
                spec.Programs.Add(program);
            }
        }
    }

    private readonly Dictionary<string, BtfFuncInfo[]> sortedFuncInfos = [];
    private readonly Dictionary<string, BtfLineInfo[]> sortedLineInfos = [];
    private readonly Dictionary<string, BtfCoreRelocation[]> sortedCoreRelocations = [];

    /// <summary>A section's BTF.ext records sorted by instruction offset, made once, so each function finds its own by binary search.</summary>
    private static T[] SortedRecords<T>(Dictionary<string, T[]> cache, Dictionary<string, List<T>> records, string section, Func<T, int> offset)
    {
        if (cache.TryGetValue(section, out var sorted))
            return sorted;
        sorted = records.TryGetValue(section, out var list) ? [.. list] : [];
        if (!IsSorted(sorted, offset))
            sorted = [.. sorted.OrderBy(offset)]; // stable: records at one offset keep their order
        cache[section] = sorted;
        return sorted;
    }

    private static bool IsSorted<T>(T[] items, Func<T, int> offset)
    {
        for (int i = 1; i < items.Length; i++)
        {
            if (offset(items[i - 1]) > offset(items[i]))
                return false;
        }
        return true;
    }

    /// <summary>The records of <paramref name="sorted"/> that fall in <paramref name="f"/>: indexes [Start, End).</summary>
    private static (int Start, int End) RangeOf<T>(T[] sorted, Function f, Func<T, int> offset)
    {
        int lo = 0, hi = sorted.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (offset(sorted[mid]) < f.Start)
                lo = mid + 1;
            else
                hi = mid;
        }
        int end = lo;
        while (end < sorted.Length && offset(sorted[end]) < f.Start + f.RawLength)
            end++;
        return (lo, end);
    }

    private ProgramSpec Link(Function program)
    {
        var layout = new List<Function> { program };
        var bases = new Dictionary<Function, int> { [program] = 0 };
        int length = program.RawLength;
        for (int i = 0; i < layout.Count; i++)
        {
            var f = layout[i];
            foreach (var (index, target) in f.Targets.OrderBy(t => t.Key))
            {
                var callee = (functionsBySection.TryGetValue(target.Section.Index, out var list) ? FindFunction(list, target.Slot) : null)
                    ?? throw new ObjectFileException($"call or function pointer to instruction {target.Slot} of '{target.Section.Name}', where no function is",
                        f.Section.Name, f.Name, ((long)f.Start + f.IndexToSlot[index]) * RawInstruction.Size);
                if (bases.ContainsKey(callee))
                    continue;
                bases[callee] = length;
                length += callee.RawLength;
                layout.Add(callee);
                if (length > MaxProgramSlots)
                    throw new ObjectFileException($"linked program is longer than {MaxProgramSlots} instructions", program.Section.Name, program.Name);
            }
        }

        var spec = new ProgramSpec { Name = program.Name, SectionName = program.Section.Name, License = this.spec.License };
        var definition = SectionDefinitions.Find(program.Section.Name);
        if (definition is { } d)
        {
            spec.Type = d.Type;
            spec.ExpectedAttachType = d.ExpectedAttachType;
            spec.Flags = d.Flags;
        }

        var instructions = new List<Instruction>(layout.Sum(f => f.Instructions.Count));
        var slotToIndex = new int[length];
        foreach (var f in layout)
        {
            int baseSlot = bases[f];
            for (int i = 0; i < f.Instructions.Count; i++)
            {
                var insn = f.Instructions[i];
                int slot = baseSlot + f.IndexToSlot[i];
                if (f.Targets.TryGetValue(i, out var target))
                {
                    var callee = FindFunction(functionsBySection[target.Section.Index], target.Slot)!;
                    long destination = bases[callee] + (target.Slot - callee.Start);
                    insn = insn with { Constant = destination - slot - 1, Reference = target.Slot == callee.Start ? callee.Name : null };
                }
                slotToIndex[slot] = instructions.Count;
                if (insn.IsLoadImmediate64)
                    slotToIndex[slot + 1] = -1;
                instructions.Add(insn);
            }
        }
        spec.Instructions = instructions;

        if (ext is not null)
        {
            foreach (var f in layout)
            {
                int shift = bases[f] - f.Start;
                var funcs = SortedRecords(sortedFuncInfos, ext.FuncInfos, f.Section.Name, static r => r.InstructionOffset);
                var (start, end) = RangeOf(funcs, f, static r => r.InstructionOffset);
                for (int i = start; i < end; i++)
                    spec.FuncInfos.Add(funcs[i] with { InstructionOffset = funcs[i].InstructionOffset + shift });
                var lines = SortedRecords(sortedLineInfos, ext.LineInfos, f.Section.Name, static r => r.InstructionOffset);
                (start, end) = RangeOf(lines, f, static r => r.InstructionOffset);
                for (int i = start; i < end; i++)
                    spec.LineInfos.Add(lines[i] with { InstructionOffset = lines[i].InstructionOffset + shift });
                var relocations = SortedRecords(sortedCoreRelocations, ext.CoreRelocations, f.Section.Name, static r => r.InstructionOffset);
                (start, end) = RangeOf(relocations, f, static r => r.InstructionOffset);
                for (int i = start; i < end; i++)
                    spec.CoreRelocations.Add(relocations[i] with { InstructionOffset = relocations[i].InstructionOffset + shift });
            }
            // Already sorted: functions were laid out at increasing offsets and each one's records come sorted.
            spec.Lines.EnsureCapacity(spec.LineInfos.Count);
            foreach (var line in spec.LineInfos)
            {
                int index = slotToIndex[line.InstructionOffset];
                if (index < 0)
                    throw new ObjectFileException("line info points at the second half of an lddw", ".BTF.ext", program.Name, line.InstructionOffset * RawInstruction.Size);
                spec.Lines.Add(new SourceLine(index, line.FileName, line.Line, line.Column, line.Text));
            }
        }
        return spec;
    }
}

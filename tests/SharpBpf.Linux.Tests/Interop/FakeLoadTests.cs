using System.Text;
using SharpBpf.Linux.Interop;
using SharpBpf.Linux.Tests.Support;

namespace SharpBpf.Linux.Tests.Interop;

/// <summary>Loader behaviour driven through a fake <see cref="IBpfSyscalls"/>: no kernel needed.</summary>
public unsafe class FakeLoadTests
{
    /// <summary>Creates maps as fds 100.., refuses every program with a long verifier log (ENOSPC while the buffer is short).</summary>
    private sealed class FakeKernel(string log) : IBpfSyscalls
    {
        private int _next = 100;
        public List<uint> LogSizes { get; } = [];
        public HashSet<int> Open { get; } = [];
        public List<string> Commands { get; } = [];

        public int Bpf(BpfCommand command, void* attr, uint size)
        {
            Commands.Add(command.ToString());
            switch (command)
            {
                case BpfCommand.BPF_MAP_CREATE:
                    Open.Add(_next);
                    return _next++;
                case BpfCommand.BPF_OBJ_GET_INFO_BY_FD:
                    var info = (InfoByFdAttr*)attr;
                    var map = (BpfMapInfo*)info->Info;
                    *map = new BpfMapInfo { Type = 2, KeySize = 4, ValueSize = 8, MaxEntries = 4, Id = (uint)info->BpfFd + 5000 };
                    return 0;
                case BpfCommand.BPF_MAP_UPDATE_ELEM:
                case BpfCommand.BPF_MAP_FREEZE:
                    return 0;
                case BpfCommand.BPF_PROG_LOAD:
                    var load = (ProgLoadAttr*)attr;
                    LogSizes.Add(load->LogSize);
                    if (load->LogSize == 0)
                        return -Errno.EACCES;
                    var bytes = Encoding.ASCII.GetBytes(log);
                    int n = (int)Math.Min((uint)bytes.Length, load->LogSize - 1);
                    new ReadOnlySpan<byte>(bytes, 0, n).CopyTo(new Span<byte>((void*)load->LogBuf, n));
                    ((byte*)load->LogBuf)[n] = 0;
                    return bytes.Length >= load->LogSize ? -Errno.ENOSPC : -Errno.EACCES;
                default:
                    return -Errno.EINVAL;
            }
        }

        public int Close(int fd) => Open.Remove(fd) ? 0 : -Errno.EBADF;
    }

    [Fact]
    public void LogBufferGrowsUntilTheLogFitsAndEveryFdIsClosed()
    {
        var log = string.Concat(Enumerable.Range(0, 3000).Select(i => $"{i % 7}: (b7) r0 = {i}\n")) + "7: (61) r0 = *(u32 *)(r0 +0)\nR0 invalid mem access 'map_value_or_null'\nprocessed 8 insns\n";
        var fake = new FakeKernel(log);
        var options = new BpfCollectionOptions { VerifierLogSize = 1024 };
        var e = Assert.Throws<BpfVerifierException>(() => BpfCollection.Load(new Bpf(fake), Programs.UncheckedLookup(), options));

        // First without a log, then 1 KiB, growing four-fold until the whole log fits.
        Assert.Equal(0u, fake.LogSizes[0]);
        Assert.Equal(1024u, fake.LogSizes[1]);
        Assert.True(fake.LogSizes[^1] > (uint)log.Length);
        for (int i = 2; i < fake.LogSizes.Count; i++)
            Assert.Equal(fake.LogSizes[i - 1] * 4, fake.LogSizes[i]);
        Assert.Equal(log.TrimEnd(), e.Log);
        Assert.Equal(7, e.RawIndex);
        Assert.Equal(12, e.SourceLine!.Line);
        Assert.Contains("R0 invalid mem access 'map_value_or_null'", e.Message);
        Assert.DoesNotContain("processed 8 insns", e.Message.Split('\n')[0]);
        Assert.Empty(fake.Open); // the map made before the refusal was closed
    }
}

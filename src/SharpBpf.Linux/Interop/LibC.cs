using System.Runtime.InteropServices;

namespace SharpBpf.Linux.Interop;

/// <summary>P/Invoke declarations into libc: the only native code SharpBpf.Linux calls.</summary>
internal static unsafe partial class LibC
{
    private const string Library = "libc";

    /// <summary>__NR_bpf for the running architecture (the number differs between ABIs).</summary>
    public static readonly long NR_bpf = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 321,
        Architecture.Arm64 => 280,
        Architecture.RiscV64 => 280,
        Architecture.LoongArch64 => 280,
        Architecture.X86 => 357,
        Architecture.Arm => 386,
        _ => -1,
    };

    // syscall(2) is variadic in C; on the 64-bit Linux ABIs integer arguments go in the same registers whether
    // the callee is variadic or not, so a fixed signature is sound there.
    [LibraryImport(Library, SetLastError = true)]
    public static partial long syscall(long number, long arg1, void* arg2, ulong arg3);

    [LibraryImport(Library, SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int mount(string source, string target, string fileSystemType, ulong flags, string? data);

    public static int LastErrno() => Marshal.GetLastPInvokeError();
}

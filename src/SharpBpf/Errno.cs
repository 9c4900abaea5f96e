namespace SharpBpf;

/// <summary>Linux errno values used by the kernel's map and helper semantics.</summary>
public static class Errno
{
    public const int EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, E2BIG = 7, EBADF = 9, EAGAIN = 11,
        ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16, EEXIST = 17, ENODEV = 19, EINVAL = 22, ENOSPC = 28,
        ERANGE = 34, ENOSYS = 38, ENOTSUPP = 524, EOPNOTSUPP = 95;

    public static string Name(int errno) => errno switch
    {
        EPERM => "EPERM", ENOENT => "ENOENT", ESRCH => "ESRCH", EINTR => "EINTR", EIO => "EIO", E2BIG => "E2BIG",
        EBADF => "EBADF", EAGAIN => "EAGAIN", ENOMEM => "ENOMEM", EACCES => "EACCES", EFAULT => "EFAULT",
        EBUSY => "EBUSY", EEXIST => "EEXIST", ENODEV => "ENODEV", EINVAL => "EINVAL", ENOSPC => "ENOSPC",
        ERANGE => "ERANGE", ENOSYS => "ENOSYS", ENOTSUPP => "ENOTSUPP", EOPNOTSUPP => "EOPNOTSUPP",
        _ => $"errno {errno}",
    };

    public static string Describe(int errno) => errno switch
    {
        EPERM => "operation not permitted",
        ENOENT => "no such entry",
        E2BIG => "too many entries or too big",
        EBADF => "bad file descriptor",
        EAGAIN => "try again",
        ENOMEM => "out of memory",
        EACCES => "permission denied",
        EFAULT => "bad address",
        EBUSY => "busy",
        EEXIST => "already exists",
        ENODEV => "no such device",
        EINVAL => "invalid argument",
        ENOSPC => "no space left",
        ERANGE => "out of range",
        ENOSYS => "not implemented",
        ENOTSUPP or EOPNOTSUPP => "not supported",
        _ => "error",
    };
}

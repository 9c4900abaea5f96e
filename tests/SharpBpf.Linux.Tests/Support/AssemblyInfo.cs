// Kernel tests run one at a time: they share the machine's two cores with other work, and the fd-leak checks
// compare this process's descriptor table before and after a test, which only means something when no other
// test opens descriptors at the same time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

import CBLAS

/// How the C allocator treats freed memory, set once per process by the command-line tool.
public enum AllocatorPolicy {
    /// Keeps freed memory in the process for reuse instead of handing it back to the kernel: blocks up to 32 MiB
    /// come from the heap (not from one `mmap` each), the heap is never trimmed, and all threads share one arena.
    ///
    /// A policy-gradient step builds K masked models (hundreds of MB of gathered weights) and frees them again;
    /// with glibc's defaults every step faulted all of those pages in anew, and the zeroing of fresh pages cost
    /// more than the copy itself (BENCHMARKS.md, "Policy-gradient step"). Peak RSS does not grow: freed blocks are
    /// reused by the next step's blocks of the same sizes. No effect where the C library is not glibc.
    public static func keepFreedMemory() {
        pp_keep_freed_memory()
    }
}

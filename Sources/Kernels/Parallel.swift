import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Thread count and a parallel-for used by the non-GEMM kernels.
public enum Parallel {
    /// Number of worker threads for PolicyPrune's own kernels (default: all online cores, or
    /// `POLICYPRUNE_THREADS`).
    nonisolated(unsafe) public static var threads: Int = {
        if let s = getenv("POLICYPRUNE_THREADS"), let n = Int(String(cString: s)), n > 0 { return n }
        #if canImport(Glibc)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return 1
        #endif
    }()

    /// Runs `body(chunkStart, chunkEnd)` over `0..<count` split into at most `threads` contiguous chunks.
    @inlinable
    public static func forEachChunk(_ count: Int, minimumPerChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = max(1, min(threads, count / max(1, minimumPerChunk)))
        if chunks == 1 { body(0..<count); return }
        let per = (count + chunks - 1) / chunks
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let start = c * per
            let end = min(count, start + per)
            if start < end { body(start..<end) }
        }
    }

    /// Runs `body(i)` for every i in `0..<count`, spread over the worker threads.
    @inlinable
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        forEachChunk(count) { range in for i in range { body(i) } }
    }
}

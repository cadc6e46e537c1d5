import CBLAS
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
        let chunk: (Int) -> Void = { c in
            let start = c * per
            let end = min(count, start + per)
            if start < end { body(start..<end) }
        }
        if onOpenMPTeam { runOnOpenMP(chunks, chunk) } else { DispatchQueue.concurrentPerform(iterations: chunks, execute: chunk) }
    }

    /// Runs `body` with this thread's parallel loops on oneDNN's OpenMP team instead of libdispatch's workers, when
    /// oneDNN is loaded and uses OpenMP (else just runs it). For the int8 forward, whose integer GEMMs run on that
    /// team: with two thread pools, each pool's idle threads wait on the cores the other pool needs next, and every
    /// hand-over is a wake-up; with one, the loops and the GEMMs alternate on the same threads. The chunks are the
    /// same either way, so the results are too.
    public static func withOpenMPTeam<T>(_ body: () throws -> T) rethrows -> T {
        guard pp_omp_available() != 0, let openMPKey else { return try body() }
        let previous = pthread_getspecific(openMPKey)
        pthread_setspecific(openMPKey, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(openMPKey, previous) }
        return try body()
    }

    /// The thread-specific flag set by `withOpenMPTeam` (nil if the process has no pthread key left: then the loops
    /// stay on libdispatch).
    private static let openMPKey: pthread_key_t? = {
        var key = pthread_key_t()
        return pthread_key_create(&key, nil) == 0 ? key : nil
    }()

    /// Whether this thread runs its parallel loops on the OpenMP team: it asked to, and is not already inside a
    /// region of the team (a nested loop goes to libdispatch, as it would without the team).
    @usableFromInline static var onOpenMPTeam: Bool {
        guard let openMPKey else { return false }
        return pthread_getspecific(openMPKey) != nil && pp_omp_in_parallel() == 0
    }

    /// Whether `withOpenMPTeam` can use the OpenMP team (oneDNN loaded and built with OpenMP).
    public static var openMPTeamAvailable: Bool { pp_omp_available() != 0 }

    /// `body(c)` for c in 0..<chunks on a team of `chunks` OpenMP threads.
    @usableFromInline static func runOnOpenMP(_ chunks: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { escapable in
            var box = escapable
            withUnsafeMutablePointer(to: &box) { pointer in
                pp_omp_parallel(Int64(chunks), Int32(chunks), { context, c in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(c))
                }, pointer)
            }
        }
    }

    /// Runs `body(i)` for every i in `0..<count`, spread over the worker threads.
    @inlinable
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        forEachChunk(count) { range in for i in range { body(i) } }
    }
}

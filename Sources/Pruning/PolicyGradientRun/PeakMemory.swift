import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Peak resident memory of this process (Linux `ru_maxrss`, KiB → bytes): `RunProbe` and `prune`'s summary.
public enum PeakMemory {
    /// Bytes of the largest resident set this process has had so far.
    public static var bytes: Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Int(usage.ru_maxrss) * 1024
    }
}

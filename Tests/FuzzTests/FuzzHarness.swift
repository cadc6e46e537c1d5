import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Settings from the environment, so CI runs the harness small and `scripts/fuzz-campaign.sh` runs it long:
/// `POLICYPRUNE_FUZZ_SCALE` multiplies every case count (default 1), `POLICYPRUNE_FUZZ_SEED` changes the seed
/// (default 16, the issue number), `POLICYPRUNE_FUZZ_MINUTES` time-boxes each format (default: no box, the counts
/// bound it), `POLICYPRUNE_FUZZ_REPORT` names a file that gets one JSON line of totals per format.
enum FuzzSettings {
    static let environment = ProcessInfo.processInfo.environment
    static var scale: Double { environment["POLICYPRUNE_FUZZ_SCALE"].flatMap(Double.init) ?? 1 }
    static var seed: UInt64 { environment["POLICYPRUNE_FUZZ_SEED"].flatMap { UInt64($0) } ?? 16 }
    static var secondsPerFormat: Double? { environment["POLICYPRUNE_FUZZ_MINUTES"].flatMap(Double.init).map { $0 * 60 } }
    static var report: String? { environment["POLICYPRUNE_FUZZ_REPORT"] }
    static func cases(_ base: Int) -> Int { max(1, Int(Double(base) * scale)) }
}

/// A case that must end within this many seconds (the issue's limit).
let caseDeadline: Double = 10

/// Totals of one format's campaign.
struct FuzzTally: Codable {
    var format: String
    var cases = 0
    var cleanErrors = 0
    var successes = 0
    var hangs = 0
    var crashes = 0
    var slowest = 0.0
    var seconds = 0.0
    var peakRSSMiB = 0.0
    /// Cases that raised the process's peak resident memory by more than 64 MiB (the first five), with the rise.
    var memoryJumps: [String] = []
    /// Up to ten error kinds with counts (the first word of each description's kind), for the record.
    var errorKinds: [String: Int] = [:]
}

/// Watches the case in progress from another thread: a case still running after `caseDeadline` seconds is a
/// hang, which cannot be interrupted in-process, so the watchdog prints how to reproduce it and ends the test
/// process (the run fails, naming the case, instead of stalling CI).
final class Watchdog: @unchecked Sendable {
    private let lock = NSLock()
    private var current: (label: String, start: Date)?
    private var thread: Thread?

    init() {
        let t = Thread { [weak self] in
            while true {
                sleep(1)
                guard let self else { return }
                self.lock.lock()
                let c = self.current
                self.lock.unlock()
                if let c, Date().timeIntervalSince(c.start) > caseDeadline {
                    FileHandle.standardError.write(Data("FUZZ HANG: \(c.label) still running after \(caseDeadline) s\n".utf8))
                    _exit(86)
                }
            }
        }
        t.start()
        thread = t
    }

    func begin(_ label: String) {
        lock.lock(); current = (label, Date()); lock.unlock()
        crashLabel.set(label)
    }
    func end() { lock.lock(); current = nil; lock.unlock() }
}

/// Runs mutated cases of one input format in-process and tallies them.
struct FuzzCampaign {
    static let watchdog = Watchdog()

    var tally: FuzzTally
    let directory: URL
    let start = Date()

    init(format: String, directory: URL) {
        tally = FuzzTally(format: format)
        self.directory = directory
    }

    /// Whether the format's time box (if any) is used up.
    var outOfTime: Bool {
        guard let box = FuzzSettings.secondsPerFormat else { return false }
        return Date().timeIntervalSince(start) > box
    }

    /// Runs `body` as one case: success, or a thrown error counted as clean when it is a typed error with a
    /// description (any `Error` the readers throw; a crash would have ended the process).
    mutating func run(_ label: String, _ body: () throws -> Void) {
        tally.cases += 1
        Self.watchdog.begin("\(tally.format) case \(tally.cases - 1) [seed \(FuzzSettings.seed)]: \(label)")
        let t0 = Date()
        let rss0 = peakRSSMiB()
        defer {
            let rise = peakRSSMiB() - rss0
            if rise > 64, tally.memoryJumps.count < 5 { tally.memoryJumps.append("+\(Int(rise)) MiB: \(label)") }
        }
        do {
            try body()
            tally.successes += 1
        } catch {
            tally.cleanErrors += 1
            let kind = String(String(reflecting: error).prefix { $0 != "(" && $0 != ":" }.prefix(60))
            if tally.errorKinds[kind] != nil || tally.errorKinds.count < 10 { tally.errorKinds[kind, default: 0] += 1 }
        }
        let dt = Date().timeIntervalSince(t0)
        Self.watchdog.end()
        tally.slowest = max(tally.slowest, dt)
        if dt > caseDeadline { tally.hangs += 1 }
    }

    /// Writes `data` to a scratch file named `name` and returns its path.
    func write(_ data: Data, _ name: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try data.write(to: url)
        return url.path
    }

    /// Finishes: totals, peak memory, the report line; fails the test on any hang.
    mutating func finish(file: StaticString = #filePath, line: UInt = #line) {
        tally.seconds = Date().timeIntervalSince(start)
        tally.peakRSSMiB = peakRSSMiB()
        if let path = FuzzSettings.report, let json = try? JSONEncoder().encode(tally) {
            if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
            if let h = FileHandle(forWritingAtPath: path) {
                h.seekToEndOfFile()
                h.write(json + Data("\n".utf8))
                h.closeFile()
            }
        }
        print("fuzz \(tally.format): \(tally.cases) cases, \(tally.cleanErrors) clean errors, \(tally.successes) successes, "
              + "\(tally.hangs) hangs, slowest \(String(format: "%.3f", tally.slowest)) s, \(String(format: "%.1f", tally.seconds)) s, peak RSS \(Int(tally.peakRSSMiB)) MiB")
        for jump in tally.memoryJumps { print("fuzz \(tally.format) memory: \(jump)") }
        XCTAssertEqual(tally.hangs, 0, "\(tally.format): cases over \(caseDeadline) s", file: file, line: line)
    }
}

/// Peak resident memory of this process and its finished children, in MiB.
func peakRSSMiB() -> Double {
    var me = rusage(), children = rusage()
    getrusage(RUSAGE_SELF.rawValue, &me)
    getrusage(RUSAGE_CHILDREN.rawValue, &children)
    return Double(max(me.ru_maxrss, children.ru_maxrss)) / 1024
}

/// The case in progress as a C string, so a fatal signal's handler can name it (async-signal-safe `write` only).
/// A crash in-process ends the test run; this line says which case to reproduce.
final class CrashLabel: @unchecked Sendable {
    private var buffer = UnsafeMutablePointer<CChar>.allocate(capacity: 1024)
    private var length = 0

    init() {
        buffer[0] = 0
        for sig in [SIGABRT, SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE] {
            signal(sig) { sig in
                let label = crashLabel
                _ = "FUZZ CRASH in case: ".withCString { write(2, $0, strlen($0)) }
                write(2, label.buffer, label.length)
                _ = "\n".withCString { write(2, $0, 1) }
                signal(sig, SIG_DFL)
                raise(sig)
            }
        }
    }

    func set(_ label: String) {
        let bytes = Array(label.utf8.prefix(1023))
        for (i, b) in bytes.enumerated() { buffer[i] = CChar(bitPattern: b) }
        buffer[bytes.count] = 0
        length = bytes.count
    }
}

let crashLabel = CrashLabel()

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The outcome of a time-limited run of the built binary (the fuzz harness's subprocess cases).
public struct BoundedRun {
    /// Exit status, or the signal number when `signalled`.
    public var status: Int32
    /// Whether the process ended by a signal (a crash, unless `timedOut` and we sent it).
    public var signalled: Bool
    /// Whether it was still running at the deadline (then killed with SIGKILL).
    public var timedOut: Bool
    /// Wall-clock seconds until it ended or was killed.
    public var seconds: Double
    /// Everything written to stderr (stdout is discarded: the harness only needs the error text).
    public var stderr: String
}

extension Shared {
    /// Runs the built `policyprune` with `arguments`, killing it after `timeout` seconds. Output goes to files, so
    /// a chatty or hung child can never block on a full pipe.
    public static func run(_ arguments: [String], timeout: Double) throws -> BoundedRun {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("pp-bounded-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errURL) }
        let errHandle = try FileHandle(forWritingTo: errURL)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errHandle
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        let start = Date()
        try process.run()
        var timedOut = false
        if done.wait(timeout: .now() + timeout) == .timedOut {
            timedOut = true
            kill(process.processIdentifier, SIGKILL)
            done.wait()
        }
        try? errHandle.close()
        let seconds = Date().timeIntervalSince(start)
        let stderr = (try? Data(contentsOf: errURL)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return BoundedRun(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                          timedOut: timedOut, seconds: seconds, stderr: stderr)
    }
}

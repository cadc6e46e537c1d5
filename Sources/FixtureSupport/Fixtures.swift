import Corpora
import Essentials
import Foundation

/// Locates and reads the shared fixtures, models and data (`../shared` beside the package root, or
/// `$POLICYPRUNE_SHARED`). Tests that need them fail, never skip, when they are missing.
public enum Shared {
    /// Errors while locating or parsing fixtures.
    public struct Missing: Error, CustomStringConvertible {
        public let description: String
    }

    /// The package root, derived from this source file's location.
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The shared folder: `$POLICYPRUNE_SHARED` if set, else `<package root>/../shared`.
    public static var root: URL {
        if let env = ProcessInfo.processInfo.environment["POLICYPRUNE_SHARED"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    }

    /// A path inside the shared folder; throws (so the test fails) when it does not exist.
    public static func url(_ relative: String) throws -> URL {
        let u = root.appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: u.path) else {
            throw Missing(description: "shared file missing: \(u.path) (set POLICYPRUNE_SHARED or place shared/ beside the package)")
        }
        return u
    }

    /// Reads a file (gunzipping `.gz`).
    public static func data(_ relative: String) throws -> Data {
        let u = try url(relative)
        let raw = try Data(contentsOf: u)
        return u.pathExtension == "gz" ? try Gzip.decompress(raw) : raw
    }

    /// Reads and parses a JSON fixture (`.json` or `.json.gz`).
    public static func json(_ relative: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: data(relative))
        guard let dict = object as? [String: Any] else { throw Missing(description: "\(relative): top level is not an object") }
        return dict
    }

    /// The built `policyprune` binary next to the test bundle (same build configuration).
    public static var binary: URL {
        productsDirectory.appendingPathComponent("policyprune")
    }

    /// The build products folder that holds the test bundle.
    public static var productsDirectory: URL {
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent()
        }
        return Bundle.main.bundleURL
    }
}

/// Tolerance comparison with absolute and relative parts (like swift-numerics `isApproximatelyEqual`).
public struct Tolerance: CustomStringConvertible {
    public var absolute: Double
    public var relative: Double
    public init(absolute: Double = 0, relative: Double = 0) { self.absolute = absolute; self.relative = relative }
    public func accepts(_ a: Double, _ b: Double) -> Bool {
        abs(a - b) <= max(absolute, relative * max(abs(a), abs(b)))
    }
    public var description: String { "abs \(absolute), rel \(relative)" }
}

/// Compares two sequences; returns nil when all elements agree, else a message naming the worst element.
public func compareAll(_ actual: [Double], _ expected: [Double], _ tol: Tolerance, _ what: String) -> String? {
    guard actual.count == expected.count else { return "\(what): count \(actual.count) != expected \(expected.count)" }
    // The worst element is the one furthest outside its own allowance (so a small value with a large relative
    // error is not hidden behind a large value with a small one).
    var worst = 0
    var worstRatio = -1.0
    var failures = 0
    for i in 0..<actual.count {
        let d = abs(actual[i] - expected[i])
        let allowed = max(tol.absolute, tol.relative * max(abs(actual[i]), abs(expected[i])))
        if !tol.accepts(actual[i], expected[i]) { failures += 1 }
        let ratio = allowed > 0 ? d / allowed : (d > 0 ? .infinity : 0)
        if ratio > worstRatio { worstRatio = ratio; worst = i }
    }
    let worstDiff = actual.isEmpty ? 0 : abs(actual[worst] - expected[worst])
    if failures == 0 { return nil }
    return "\(what): \(failures) of \(actual.count) outside tolerance (\(tol)); worst at [\(worst)]: \(actual[worst]) vs \(expected[worst]) (diff \(worstDiff))"
}

extension Dictionary where Key == String, Value == Any {
    /// Reads a nested value by keys, throwing with the path when absent or of the wrong type.
    public func get<T>(_ keys: String..., as type: T.Type = T.self) throws -> T {
        var current: Any = self
        for (i, k) in keys.enumerated() {
            guard let d = current as? [String: Any], let next = d[k] else {
                throw Shared.Missing(description: "fixture key path \(keys[...i].joined(separator: ".")) missing")
            }
            current = next
        }
        if let v = current as? T { return v }
        if T.self == [Double].self, let arr = current as? [NSNumber], let v = arr.map({ $0.doubleValue }) as? T { return v }
        if T.self == [Int].self, let arr = current as? [NSNumber], let v = arr.map({ $0.intValue }) as? T { return v }
        if T.self == Double.self, let n = current as? NSNumber, let v = n.doubleValue as? T { return v }
        if T.self == Int.self, let n = current as? NSNumber, let v = n.intValue as? T { return v }
        throw Shared.Missing(description: "fixture key path \(keys.joined(separator: ".")) has type \(Swift.type(of: current)), wanted \(T.self)")
    }
}

/// The outcome of running the built binary.
public struct BinaryRun {
    /// Exit status.
    public var status: Int32
    /// Everything written to stdout.
    public var stdout: String
    /// Everything written to stderr.
    public var stderr: String
}

extension Shared {
    /// Runs the built `policyprune` with `arguments` (and `environment` added to this process's) and collects its
    /// exit status and output. stderr is drained on another thread while stdout is read, so a large output on either
    /// pipe cannot block the child.
    public static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> BinaryRun {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return BinaryRun(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errBox.data, as: UTF8.self))
    }
}

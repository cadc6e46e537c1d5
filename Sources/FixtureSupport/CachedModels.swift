import Foundation

/// Real pretrained models too large for `shared/` (Gemma 3 270M: 253 MB), which a script there fetches into a
/// cache. A test finds one through `Shared.cachedModel(_:)`.
public struct CachedModel: Sendable {
    /// The environment variable naming the file directly.
    public var environmentVariable: String
    /// The file name inside the cache's `models` folder.
    public var fileName: String
    /// The fetch script, relative to the shared folder; it prints the verified path on stdout.
    public var fetchScript: String

    /// Gemma 3 270M, GGUF Q4_K_M mix (`shared/models/gemma3-270m`).
    public static let gemma3_270m = CachedModel(environmentVariable: "POLICYPRUNE_GEMMA3", fileName: "gemma-3-270m-q4_k_m.gguf",
                                                fetchScript: "models/gemma3-270m/fetch.sh")
}

extension Shared {
    /// Whether this run is continuous integration (`CI=true`), where a test must fail rather than skip when a
    /// model cannot be obtained.
    public static var isCI: Bool { ProcessInfo.processInfo.environment["CI"]?.lowercased() == "true" }

    /// The path of `model`: `$<environmentVariable>` if set (it must exist), else the cache
    /// (`$POLICYPRUNE_CACHE/models` or `~/.cache/policyprune/models`). When it is not there, the fetch script runs
    /// only under CI or with `POLICYPRUNE_FETCH_MODELS=1` (tests do not download on a developer's machine unasked).
    /// Returns nil when the model is absent and not fetched outside CI (the caller skips, saying how to get it);
    /// throws `Missing` under CI when it cannot be obtained, so the test fails.
    public static func cachedModel(_ model: CachedModel) throws -> URL? {
        let env = ProcessInfo.processInfo.environment
        if let path = env[model.environmentVariable], !path.isEmpty {
            guard FileManager.default.fileExists(atPath: path) else {
                throw Missing(description: "\(model.environmentVariable)=\(path) does not exist")
            }
            return URL(fileURLWithPath: path)
        }
        let cacheRoot = env["POLICYPRUNE_CACHE"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/policyprune")
        let cached = cacheRoot.appendingPathComponent("models").appendingPathComponent(model.fileName)
        if FileManager.default.fileExists(atPath: cached.path) { return cached }
        guard isCI || env["POLICYPRUNE_FETCH_MODELS"] == "1" else { return nil }
        let script = try url(model.fetchScript)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script.path, cached.deletingLastPathComponent().path]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let printed = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, FileManager.default.fileExists(atPath: cached.path) else {
            throw Missing(description: "\(script.path) failed (status \(process.terminationStatus), printed '\(printed)'): \(model.fileName) not obtained")
        }
        return cached
    }

    /// The message a test skips with outside CI when `model` is absent.
    public static func howToFetch(_ model: CachedModel) -> String {
        "\(model.fileName) not in the cache: run \(root.appendingPathComponent(model.fetchScript).path), set \(model.environmentVariable), or set POLICYPRUNE_FETCH_MODELS=1"
    }
}

import Foundation

/// A one-time measurement of OpenBLAS against oneDNN's sgemm on a model's GEMM shapes, saved per machine, so
/// that every later process sends each F32 GEMM to the library that was faster on the nearest measured shape
/// (issue 12 item 3). Made by `policyprune bench --calibrate-sgemm`; read by `F32GEMM.choice` when its machine
/// key matches this process (CPU, threads, OpenBLAS core, library versions). Timings decide only when the file
/// is written: every process that reads the same file computes the same bits.
public struct F32GEMMCalibration: Codable, Sendable, Equatable {
    /// One measured shape: `C[m, n] = A[m, k] · op(B)`, `B` transposed (`[n, k]`) or not (`[k, n]`).
    public struct Entry: Codable, Sendable, Equatable {
        public var m: Int, n: Int, k: Int
        public var transposeB: Bool
        /// Best-of-N rates in the calibration run (GFLOP/s).
        public var openblasGFLOPS: Double, dnnlGFLOPS: Double
        /// What the model's GEMMs of this shape use: oneDNN when it was more than 5 % faster, else OpenBLAS (the
        /// margin keeps timing noise from flipping shapes where the two are level).
        public var backend: F32GEMM.Backend

        public init(m: Int, n: Int, k: Int, transposeB: Bool, openblasGFLOPS: Double, dnnlGFLOPS: Double) {
            self.m = m; self.n = n; self.k = k; self.transposeB = transposeB
            self.openblasGFLOPS = openblasGFLOPS; self.dnnlGFLOPS = dnnlGFLOPS
            backend = dnnlGFLOPS > 1.05 * openblasGFLOPS ? .dnnl : .openblas
        }
    }

    /// The file format's version.
    public var formatVersion = 1
    /// `F32GEMMCalibration.machineKey()` of the process that measured.
    public var machine: String
    /// The measured shapes (at least one).
    public var entries: [Entry]
    /// Whole forwards timed under each candidate ("per shape", "openblas", "dnnl": seconds of a dense plus a
    /// half-kept forward, best of N), and which one the entries' backends follow. GEMMs timed alone do not see the
    /// cost of mixing the two libraries' thread pools in one pass, so the per-shape table is kept only when its
    /// forward is the fastest; otherwise every entry takes the faster library.
    public var forwardSeconds: [String: Double]?
    public var decision: String?

    public init(machine: String, entries: [Entry]) {
        self.machine = machine
        self.entries = entries
    }

    /// The backend of the entry nearest to (m, n, k) in log space, among those with the same `transposeB` when there
    /// are any; ties go to the earlier entry. Deterministic: a function of the table and the shape only.
    public func backend(m: Int, n: Int, k: Int, transposeB: Bool) -> F32GEMM.Backend {
        let sameLayout = entries.contains { $0.transposeB == transposeB }
        var best: Entry?
        var bestDistance = Double.infinity
        let lm = log2(Double(max(1, m))), ln = log2(Double(max(1, n))), lk = log2(Double(max(1, k)))
        for e in entries where !sameLayout || e.transposeB == transposeB {
            let distance = abs(log2(Double(max(1, e.m))) - lm) + abs(log2(Double(max(1, e.n))) - ln) + abs(log2(Double(max(1, e.k))) - lk)
            if distance < bestDistance { bestDistance = distance; best = e }
        }
        return best?.backend ?? .openblas
    }

    /// This table with every entry's backend set to `backend` (the forward check's uniform outcome).
    public func uniform(_ backend: F32GEMM.Backend) -> F32GEMMCalibration {
        var copy = self
        for i in copy.entries.indices { copy.entries[i].backend = backend }
        return copy
    }

    /// How many entries chose each backend, e.g. "openblas 9, dnnl 5".
    public var summary: String {
        let dnnl = entries.filter { $0.backend == .dnnl }.count
        return "openblas \(entries.count - dnnl), dnnl \(dnnl)"
    }

    /// What makes a calibration valid for this process: the CPU model, online cores, PolicyPrune's and OpenBLAS's
    /// thread counts, the OpenBLAS kernel in use and its library file, and oneDNN's version. Loads both libraries.
    public static func machineKey() -> String {
        _ = try? BLAS.load()
        let dnnl = DNNL.isAvailable ? "oneDNN \(DNNL.version) threads \(DNNL.threads)" : "no oneDNN"
        return "\(cpuModel()) | \(ProcessInfo.processInfo.activeProcessorCount) cores | threads \(Parallel.threads) | "
            + "OpenBLAS \(BLAS.coreName) threads \(BLAS.threads) \(BLAS.libraryPath) | \(dnnl)"
    }

    /// The CPU's model name (`/proc/cpuinfo`), or "unknown CPU".
    static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") { return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        return "unknown CPU"
    }

    /// The calibration file of this user: `POLICYPRUNE_SGEMM_CALIBRATION` when set, else
    /// `$XDG_CACHE_HOME/policyprune/sgemm-calibration.json` (`~/.cache/...` without XDG_CACHE_HOME).
    public static var defaultURL: URL {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["POLICYPRUNE_SGEMM_CALIBRATION"], !path.isEmpty { return URL(fileURLWithPath: path) }
        let cache = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return cache.appendingPathComponent("policyprune/sgemm-calibration.json")
    }

    /// The calibration at `url` if it exists, decodes, has entries and was made for `machine`; otherwise nil and
    /// why (nil reason: no file).
    public static func load(from url: URL, machine: String) -> (calibration: F32GEMMCalibration?, reason: String?) {
        guard let data = try? Data(contentsOf: url) else { return (nil, nil) }
        guard let calibration = try? JSONDecoder().decode(F32GEMMCalibration.self, from: data), !calibration.entries.isEmpty,
              calibration.formatVersion == 1 else {
            return (nil, "\(url.path) is not an sgemm calibration (run policyprune bench --calibrate-sgemm again); ignored")
        }
        guard calibration.machine == machine else {
            return (nil, "\(url.path) was measured for another machine or thread count (\(calibration.machine)); ignored")
        }
        return (calibration, nil)
    }

    /// Times OpenBLAS and oneDNN's sgemm on each shape (alternating, the best of `repeats` after a warm-up, on
    /// random operands) and returns the table. Needs both libraries (`DNNL.load()` throws otherwise).
    public static func measure(shapes: [(m: Int, n: Int, k: Int, transposeB: Bool)], repeats: Int = 3) throws -> F32GEMMCalibration {
        try BLAS.load()
        try DNNL.load()
        var entries = [Entry]()
        for shape in shapes {
            let (m, n, k) = (shape.m, shape.n, shape.k)
            var a = [Float](repeating: 0, count: m * k), b = [Float](repeating: 0, count: n * k)
            var c = [Float](repeating: 0, count: m * n)
            var state: UInt32 = 12345
            for i in a.indices { state = state &* 1_664_525 &+ 1_013_904_223; a[i] = Float(state >> 8) / Float(1 << 24) - 0.5 }
            for i in b.indices { state = state &* 1_664_525 &+ 1_013_904_223; b[i] = Float(state >> 8) / Float(1 << 24) - 0.5 }
            var best: [F32GEMM.Backend: Double] = [.openblas: .infinity, .dnnl: .infinity]
            for repetition in 0...max(1, repeats) {
                for backend in [F32GEMM.Backend.openblas, .dnnl] {
                    let start = DispatchTime.now().uptimeNanoseconds
                    a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                        if backend == .dnnl {
                            DNNL.sgemm(m: m, n: n, k: k, a: ap.baseAddress!, b: bp.baseAddress!, transposeB: shape.transposeB, c: cp.baseAddress!)
                        } else {
                            BLAS.gemm(m: m, n: n, k: k, a: ap.baseAddress!, b: bp.baseAddress!, transposeB: shape.transposeB, c: cp.baseAddress!)
                        }
                    } } }
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    if repetition > 0 { best[backend] = min(best[backend]!, seconds) }
                }
            }
            let flop = 2 * Double(m) * Double(n) * Double(k)
            entries.append(Entry(m: m, n: n, k: k, transposeB: shape.transposeB,
                                 openblasGFLOPS: flop / best[.openblas]! / 1e9, dnnlGFLOPS: flop / best[.dnnl]! / 1e9))
        }
        return F32GEMMCalibration(machine: machineKey(), entries: entries)
    }

    /// The model's F32 GEMM shapes for `tokens` rows (batch × sequence) of `sequence` positions: per distinct layer
    /// shape the fused q/k/v, o, fused gate/up and down (`Wᵀ` stored) projections dense and at half their
    /// structures, the head in 256-row blocks, and one head's attention scores and values.
    public static func modelShapes(hidden: Int, vocab: Int, layers: [(qkv: Int, query: Int, ffn: Int, headDim: Int)],
                                   tokens: Int, sequence: Int) -> [(m: Int, n: Int, k: Int, transposeB: Bool)] {
        var shapes = [(m: Int, n: Int, k: Int, transposeB: Bool)]()
        func add(_ m: Int, _ n: Int, _ k: Int, _ t: Bool) {
            guard m > 0, n > 0, k > 0, !shapes.contains(where: { $0 == (m, n, k, t) }) else { return }
            shapes.append((m, n, k, t))
        }
        for l in layers {
            for fraction in [1, 2] {
                add(tokens, l.qkv / fraction, hidden, true)
                add(tokens, hidden, l.query / fraction, true)
                add(tokens, 2 * l.ffn / fraction, hidden, true)
                add(tokens, hidden, l.ffn / fraction, false)
            }
            add(sequence, sequence, l.headDim, true)
            add(sequence, l.headDim, sequence, false)
        }
        add(min(256, tokens), vocab, hidden, true)
        return shapes
    }
}

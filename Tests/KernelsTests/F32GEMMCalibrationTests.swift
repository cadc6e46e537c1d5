import Foundation
import XCTest
@testable import Kernels

/// The per-shape sgemm calibration (issue 12 item 3): the table's lookup, its file, and how it refines the rule.
final class F32GEMMCalibrationTests: XCTestCase {
    static func entry(_ m: Int, _ n: Int, _ k: Int, _ t: Bool, openblas: Double, dnnl: Double) -> F32GEMMCalibration.Entry {
        F32GEMMCalibration.Entry(m: m, n: n, k: k, transposeB: t, openblasGFLOPS: openblas, dnnlGFLOPS: dnnl)
    }

    /// oneDNN is chosen only when more than 5 % faster.
    func testEntryChoosesOneDNNOnlyBeyondTheMargin() {
        XCTAssertEqual(Self.entry(8, 8, 8, true, openblas: 100, dnnl: 104.9).backend, .openblas)
        XCTAssertEqual(Self.entry(8, 8, 8, true, openblas: 100, dnnl: 105.1).backend, .dnnl)
        XCTAssertEqual(Self.entry(8, 8, 8, true, openblas: 100, dnnl: 50).backend, .openblas)
    }

    /// A shape takes the backend of the nearest measured shape (log distance over m, n, k) with its B layout; a
    /// layout nobody measured falls back to every entry; ties go to the earlier entry.
    func testNearestShapeDecides() {
        let table = F32GEMMCalibration(machine: "m", entries: [
            Self.entry(1024, 960, 576, true, openblas: 400, dnnl: 200),      // openblas
            Self.entry(1024, 3072, 576, true, openblas: 200, dnnl: 400),     // dnnl
            Self.entry(128, 128, 64, true, openblas: 10, dnnl: 40),          // dnnl
        ])
        XCTAssertEqual(table.backend(m: 1024, n: 960, k: 576, transposeB: true), .openblas, "an exact shape")
        XCTAssertEqual(table.backend(m: 1024, n: 1000, k: 576, transposeB: true), .openblas)
        XCTAssertEqual(table.backend(m: 1024, n: 2800, k: 576, transposeB: true), .dnnl)
        XCTAssertEqual(table.backend(m: 100, n: 100, k: 64, transposeB: true), .dnnl, "attention-sized")
        XCTAssertEqual(table.backend(m: 1024, n: 960, k: 576, transposeB: false), .openblas, "no N entry: all entries")
        let tie = F32GEMMCalibration(machine: "m", entries: [Self.entry(64, 64, 64, true, openblas: 1, dnnl: 2),
                                                             Self.entry(256, 256, 256, true, openblas: 2, dnnl: 1)])
        XCTAssertEqual(tie.backend(m: 128, n: 128, k: 128, transposeB: true), .dnnl, "equidistant: the first entry")
        XCTAssertEqual(table.summary, "openblas 1, dnnl 2")
        let uniform = table.uniform(.openblas)
        XCTAssertEqual(uniform.summary, "openblas 3, dnnl 0")
        XCTAssertEqual(uniform.backend(m: 100, n: 100, k: 64, transposeB: true), .openblas)
        XCTAssertEqual(uniform.entries.map(\.dnnlGFLOPS), table.entries.map(\.dnnlGFLOPS), "the measurements stay")
    }

    /// The file: a valid one for this machine loads; another machine's, a corrupt one and an empty table are refused
    /// with a reason naming the file; no file is no calibration and no reason.
    func testFileIsCheckedAgainstTheMachine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pp-cal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("c.json")
        let table = F32GEMMCalibration(machine: "cpu A | 2 cores", entries: [Self.entry(4, 4, 4, true, openblas: 1, dnnl: 2)])
        try JSONEncoder().encode(table).write(to: url)
        XCTAssertEqual(F32GEMMCalibration.load(from: url, machine: "cpu A | 2 cores").calibration, table)
        let other = F32GEMMCalibration.load(from: url, machine: "cpu B | 2 cores")
        XCTAssertNil(other.calibration)
        XCTAssertTrue(other.reason?.contains("another machine") == true && other.reason?.contains(url.path) == true, other.reason ?? "")
        try Data("{not json".utf8).write(to: url)
        XCTAssertTrue(F32GEMMCalibration.load(from: url, machine: "cpu A | 2 cores").reason?.contains("not an sgemm calibration") == true)
        try JSONEncoder().encode(F32GEMMCalibration(machine: "cpu A | 2 cores", entries: [])).write(to: url)
        XCTAssertNil(F32GEMMCalibration.load(from: url, machine: "cpu A | 2 cores").calibration)
        let missing = F32GEMMCalibration.load(from: dir.appendingPathComponent("none.json"), machine: "x")
        XCTAssertNil(missing.calibration)
        XCTAssertNil(missing.reason)
    }

    /// A calibration replaces the rule's single backend with the table (reason names the file); a refused file
    /// keeps the rule and becomes a notable reason; no file leaves the rule untouched.
    func testCalibrationRefinesTheRule() {
        let rule = F32GEMM.decide(override: nil, environmentCoreType: nil, cpuCoreType: "SkylakeX", dnnlAvailable: { true })
        let table = F32GEMMCalibration(machine: "m", entries: [Self.entry(4, 4, 4, true, openblas: 1, dnnl: 2),
                                                               Self.entry(8, 8, 8, true, openblas: 1, dnnl: 3),
                                                               Self.entry(16, 16, 16, true, openblas: 3, dnnl: 1)])
        let calibrated = F32GEMM.calibrated(rule: rule, calibration: table, path: "/c.json", problem: nil)
        XCTAssertEqual(calibrated.calibration, table)
        XCTAssertEqual(calibrated.backend, .dnnl, "the majority, reported as the fallback")
        XCTAssertTrue(calibrated.reason.contains("/c.json") && calibrated.reason.contains("openblas 1, dnnl 2"), calibrated.reason)
        let refused = F32GEMM.calibrated(rule: rule, calibration: nil, path: "/c.json", problem: "/c.json was measured for another machine")
        XCTAssertNil(refused.calibration)
        XCTAssertEqual(refused.backend, rule.backend)
        XCTAssertTrue(refused.notable && refused.reason.hasPrefix(rule.reason), refused.reason)
        XCTAssertEqual(F32GEMM.calibrated(rule: rule, calibration: nil, path: "/c.json", problem: nil), rule)
    }

    /// The model's shapes: per distinct layer the four projections dense and halved, attention, and the head.
    func testModelShapes() {
        let shapes = F32GEMMCalibration.modelShapes(hidden: 576, vocab: 49152, layers: Array(repeating: (qkv: 960, query: 576, ffn: 1536, headDim: 64), count: 30),
                                                    tokens: 1024, sequence: 128)
        XCTAssertEqual(shapes.count, 11)
        XCTAssertTrue(shapes.contains { $0 == (1024, 576, 1536, false) }, "down reads the transposed weights")
        XCTAssertTrue(shapes.contains { $0 == (256, 49152, 576, true) }, "the head in 256-row blocks")
        XCTAssertTrue(shapes.contains { $0 == (128, 128, 64, true) } && shapes.contains { $0 == (128, 64, 128, false) })
    }
}

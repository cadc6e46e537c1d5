import XCTest
@testable import Kernels

/// The F32 GEMM backend rule (`F32GEMM.decide`): OpenBLAS unless the environment pins OpenBLAS below the CPU's
/// kernels and oneDNN is installed; `POLICYPRUNE_SGEMM` overrides; never decided by timings.
final class F32GEMMTests: XCTestCase {
    func testOpenBLASWhenPolicyPruneChoseTheCoreType() {
        let c = F32GEMM.decide(override: nil, environmentCoreType: nil, cpuCoreType: "SkylakeX", dnnlAvailable: { true })
        XCTAssertEqual(c.backend, .openblas)
        XCTAssertFalse(c.notable)
    }

    func testPinnedWeakerCoreTypeMovesToOneDNN() {
        var asked = false
        let c = F32GEMM.decide(override: nil, environmentCoreType: "Haswell", cpuCoreType: "SkylakeX",
                               dnnlAvailable: { asked = true; return true })
        XCTAssertTrue(asked)
        XCTAssertEqual(c.backend, .dnnl)
        XCTAssertTrue(c.notable)
        XCTAssertTrue(c.reason.contains("OPENBLAS_CORETYPE=Haswell"), c.reason)
    }

    func testPinnedWeakerCoreTypeWithoutOneDNNStaysAndSaysSo() {
        let c = F32GEMM.decide(override: nil, environmentCoreType: "Haswell", cpuCoreType: "SkylakeX", dnnlAvailable: { false })
        XCTAssertEqual(c.backend, .openblas)
        XCTAssertTrue(c.notable)
        XCTAssertTrue(c.reason.contains("unset it"), c.reason)
    }

    func testPinnedBestCoreTypeOrUnknownCPUStaysOnOpenBLAS() {
        for (pinned, cpu) in [("SkylakeX", "SkylakeX"), ("skylakex", "SkylakeX"), ("Haswell", "Haswell"), ("Haswell", "")] {
            let c = F32GEMM.decide(override: nil, environmentCoreType: pinned, cpuCoreType: cpu,
                                   dnnlAvailable: { XCTFail("oneDNN asked for \(pinned) on \(cpu)"); return true })
            XCTAssertEqual(c.backend, .openblas, "\(pinned) on \(cpu)")
            XCTAssertFalse(c.notable)
        }
    }

    func testOverrides() {
        XCTAssertEqual(F32GEMM.decide(override: "openblas", environmentCoreType: "Haswell", cpuCoreType: "SkylakeX",
                                      dnnlAvailable: { true }).backend, .openblas)
        XCTAssertEqual(F32GEMM.decide(override: "dnnl", environmentCoreType: nil, cpuCoreType: "SkylakeX",
                                      dnnlAvailable: { true }).backend, .dnnl)
        let missing = F32GEMM.decide(override: "dnnl", environmentCoreType: nil, cpuCoreType: "SkylakeX", dnnlAvailable: { false })
        XCTAssertEqual(missing.backend, .openblas)
        XCTAssertTrue(missing.notable && missing.reason.contains("libdnnl"), missing.reason)
        let unknown = F32GEMM.decide(override: "mkl", environmentCoreType: nil, cpuCoreType: "SkylakeX", dnnlAvailable: { true })
        XCTAssertEqual(unknown.backend, .openblas)
        XCTAssertTrue(unknown.reason.contains("ignored"), unknown.reason)
    }

    /// The process's own choice agrees with the rule applied to its environment, and its GEMM computes a GEMM.
    func testProcessChoiceComputesAGEMM() throws {
        try BLAS.load()
        let (m, n, k) = (3, 4, 5)
        let a = (0..<(m * k)).map { Float($0 % 7) - 3 }, b = (0..<(n * k)).map { Float($0 % 5) - 2 }
        var c = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            F32GEMM.gemm(m: m, n: n, k: k, a: ap.baseAddress!, b: bp.baseAddress!, transposeB: true, c: cp.baseAddress!)
        } } }
        for i in 0..<m { for j in 0..<n {
            let expected = (0..<k).reduce(Float(0)) { $0 + a[i * k + $1] * b[j * k + $1] }
            XCTAssertEqual(c[i * n + j], expected, "C[\(i), \(j)] with \(F32GEMM.choice.backend)")
        } }
    }
}

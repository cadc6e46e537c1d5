import FixtureSupport
import Foundation
import XCTest

/// `policyprune bench --compute int8` end to end (stories260K, tiny shapes: checks output, not speed).
final class Int8CLITests: XCTestCase {
    /// `--json` reports every forward row with f32 and int8 times and their ratio, and the GEMM rows with the
    /// oneDNN rates.
    func testBenchInt8JSON() throws {
        let model = try Shared.url("models/stories260K/stories260K.bin").path
        let run = try Shared.run(["bench", "--model", model, "--compute", "int8", "--json", "--batch", "2", "--seq", "16", "--repeats", "1"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let forward = try XCTUnwrap(json["forward"] as? [[String: Any]])
        XCTAssertEqual(forward.map { $0["name"] as? String }, ["dense", "masked, 50% of groups/channels kept", "dense, decoder stack only",
                                                               "masked stack, 50% of groups/channels kept"])
        for row in forward {
            XCTAssertNotNil(row["f32Seconds"] as? Double)
            XCTAssertNotNil(row["int8Seconds"] as? Double)
            XCTAssertNotNil(row["int8SpeedUp"] as? Double)
        }
        let gemm = try XCTUnwrap(json["gemm"] as? [[String: Any]])
        XCTAssertEqual(gemm.count, 5)
        XCTAssertNotNil(gemm[0]["dnnlU8S8S32GOPS"] as? Double)
    }

    /// Without oneDNN, asking for int8 fails with exit status 1 and a message naming the library and the package;
    /// f32 still runs.
    func testInt8WithoutOneDNNIsATypedError() throws {
        let model = try Shared.url("models/stories260K/stories260K.bin").path
        let missing = ["POLICYPRUNE_DNNL": "/nonexistent/libdnnl.so.2"]
        let run = try Shared.run(["bench", "--model", model, "--compute", "int8", "--batch", "1", "--seq", "8", "--repeats", "1"], environment: missing)
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("libdnnl.so.2") && run.stderr.contains("apt-get install libdnnl-dev"), run.stderr)
        let f32 = try Shared.run(["bench", "--model", model, "--batch", "1", "--seq", "8", "--repeats", "1", "--keep", "0"], environment: missing)
        XCTAssertEqual(f32.status, 0, f32.stderr)
        XCTAssertTrue(f32.stdout.contains("oneDNN: not available"), f32.stdout)
    }
}

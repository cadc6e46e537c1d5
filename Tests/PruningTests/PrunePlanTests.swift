import Essentials
import XCTest
import Checkpoints
import Transformer
@testable import Pruning

final class PrunePlanTests: XCTestCase {
    private let config = tinyConfig(layers: 2, kvHeads: 2, groupSize: 2, ffn: 6)

    private func plan() throws -> PrunePlan {
        let mask = StructureMask(layers: [.init(keptKVGroups: [1], keptChannels: []),
                                          .init(keptKVGroups: [], keptChannels: [0, 2])])
        return try PrunePlan(mask: mask, config: config, method: "policy-gradient",
                             options: ["steps": .integer(2000), "lr": .number(2e-3), "init": .string("wanda-sp"),
                                       "global": .bool(true), "window": .object(["T": .integer(5)]),
                                       "rates": .array([.number(0.7), .number(0.5)]), "one": .integer(1), "zero": .integer(0),
                                       "no": .bool(false)],
                             seed: 42, requestedRate: 0.3, modelSHA256: String(repeating: "ab", count: 32),
                             calibrationSHA256: String(repeating: "0f", count: 32), toolVersion: "0.1.0")
    }

    /// Encode → decode gives the same plan; achieved rates are computed from the mask; the mask comes back out.
    func testRoundTrip() throws {
        let p = try plan()
        XCTAssertEqual(p.achievedRate.attentionMLP, 1 - 240.0 / 1056, accuracy: 1e-15)
        XCTAssertEqual(p.keptParameters.prunable, 240)
        XCTAssertEqual(p.denseParameters, config.parameterCount)
        let data = try p.jsonData()
        let back = try PrunePlan.decode(data)
        XCTAssertEqual(back, p)
        XCTAssertEqual(try back.jsonData(), data)
        XCTAssertEqual(back.structureMask.layers[1].keptChannels, [0, 2])
        XCTAssertNoThrow(try back.validate(against: config))
        let text = String(decoding: data, as: UTF8.self)
        for key in ["\"kept_kv_groups\"", "\"kept_channels\"", "\"achieved_rate\"", "\"attention_mlp\"", "\"whole_model\"",
                    "\"model_sha256\"", "\"calibration_sha256\"", "\"tool_version\"", "\"requested_rate\"", "\"seed\" : 42"] {
            XCTAssertTrue(text.contains(key), "JSON lacks \(key)")
        }
    }

    /// Validation against a config: layer count, ids out of range, another model's parameter count.
    func testValidationAgainstConfig() throws {
        let p = try plan()
        var fewer = p
        fewer.layers.removeLast()
        XCTAssertThrowsError(try fewer.validate(against: config)) {
            XCTAssertEqual($0 as? PruningError, .layerCount(what: "plan", expected: 2, found: 1))
        }
        var outOfRange = p
        outOfRange.layers[0].keptChannels = [6]
        XCTAssertThrowsError(try outOfRange.validate(against: config)) {
            XCTAssertEqual($0 as? PruningError, .idOutOfRange(what: "plan kept_channels", layer: 0, id: 6, limit: 6))
        }
        let wider = tinyConfig(layers: 2, kvHeads: 2, groupSize: 2, ffn: 7)
        XCTAssertThrowsError(try p.validate(against: wider)) {
            guard case PruningError.invalidValue(let key, _, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(key, "dense_parameters")
        }
        // A mask that does not fit cannot become a plan.
        XCTAssertThrowsError(try PrunePlan(mask: StructureMask(layers: []), config: config, method: "x", seed: 0,
                                           requestedRate: 0.3, modelSHA256: "", calibrationSHA256: "", toolVersion: ""))
    }

    /// Decoding rejects unsorted ids, rates outside [0, 1] and unknown format versions, naming the problem.
    func testDecodeErrors() throws {
        let good = try XCTUnwrap(try JSONSerialization.jsonObject(with: try plan().jsonData()) as? [String: Any])
        func decode(_ edit: (inout [String: Any]) -> Void) -> Error? {
            var object = good
            edit(&object)
            do { _ = try PrunePlan.decode(try JSONSerialization.data(withJSONObject: object)); return nil } catch { return error }
        }
        XCTAssertEqual(decode { $0["requested_rate"] = 1.5 } as? PruningError,
                       .invalidValue(key: "requested_rate", value: "1.5", reason: "must be in [0, 1]"))
        XCTAssertEqual(decode { $0["format_version"] = 2 } as? PruningError, .unsupportedFormatVersion(found: 2, supported: 1))
        XCTAssertEqual(decode {
            var layers = $0["layers"] as? [[String: Any]] ?? []
            layers[1]["kept_channels"] = [2, 0]
            $0["layers"] = layers
        } as? PruningError, .idsNotAscending(what: "plan kept_channels", layer: 1, id: 0))
        XCTAssertNotNil(decode { $0["seed"] = nil })
        XCTAssertNil(decode { _ in })
    }
}

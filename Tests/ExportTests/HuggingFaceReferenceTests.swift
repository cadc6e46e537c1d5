import Checkpoints
import FixtureSupport
import Foundation
import Pruning
import Transformer
import XCTest

/// The reference check of issue 6: Hugging Face transformers loads a uniform `hf` export and reproduces our logits.
/// transformers is not part of the build machine, so this runs only when `POLICYPRUNE_TRANSFORMERS_PYTHON` names a
/// Python with torch + transformers (see README, "Exported models and Hugging Face transformers"); otherwise it is
/// reported as skipped, never passed. Tolerance: abs 1e-4 on logits, the fixture README's for stories260K
/// (float32 engines with different summation orders).
final class HuggingFaceReferenceTests: XCTestCase {
    static let script = """
        import json, sys
        import numpy as np
        import torch
        from transformers import AutoModelForCausalLM
        folder, reference = sys.argv[1], json.load(open(sys.argv[2]))
        torch.set_num_threads(2)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
        with torch.no_grad():
            logits = model(torch.tensor([reference["ids"]])).logits[0].float().numpy()
        ours = np.asarray(reference["logits"], dtype=np.float32).reshape(logits.shape)
        print(json.dumps({"class": type(model).__name__, "max_abs_diff": float(np.abs(logits - ours).max()),
                          "max_abs_logit": float(np.abs(ours).max())}))
        """

    func testTransformersReproducesUniformExport() throws {
        guard let python = ProcessInfo.processInfo.environment["POLICYPRUNE_TRANSFORMERS_PYTHON"], !python.isEmpty else {
            throw XCTSkip("set POLICYPRUNE_TRANSFORMERS_PYTHON to a Python with torch and transformers to run the reference check")
        }
        let m = try Models.stories()
        let folder = try temporaryFolder(self)
        let plan = try Plans.uniform(m.model.config, groups: 2, channels: 86)
        let compacted = try plan.compact(config: m.model.config, weights: m.model.weights)
        let out = folder + "/stories-uniform-hf"
        _ = try ModelExporter.export(ExportRequest(config: compacted.config, weights: compacted.weights, format: .hf, dtype: .f32,
                                                   tokenizer: m.checkpoint.tokenizer, name: "stories"), to: out, force: false)
        let ours = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]
        let reference = folder + "/ours.json"
        try JSONSerialization.data(withJSONObject: ["ids": m.ids, "logits": ours.map(Double.init)]).write(to: URL(fileURLWithPath: reference))
        let script = folder + "/check.py"
        try Self.script.write(toFile: script, atomically: true, encoding: .utf8)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script, out, reference]
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, String(decoding: errors, as: UTF8.self))
        let line = String(decoding: output, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        let result = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
        print("transformers reference check: \(line)")
        XCTAssertEqual(result["class"] as? String, "LlamaForCausalLM")
        XCTAssertLessThanOrEqual(try XCTUnwrap(result["max_abs_diff"] as? Double), 1e-4, line)
    }
}

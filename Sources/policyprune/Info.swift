import ArgumentParser
import Checkpoints
import Foundation
import Pruning
import Transformer

/// `policyprune info`: architecture, per-layer sizes, parameter counts and prunable structures.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a model's architecture, parameter counts and prunable structures.")

    @OptionGroup var model: ModelOptions
    @Flag(help: "Print JSON instead of text.") var json = false

    struct Report: Codable {
        var path: String
        var format: String
        var architecture: String
        var hiddenSize: Int
        var vocabSize: Int
        var layers: Int
        var normEpsilon: Float
        var ropeTheta: Float
        var tiedEmbeddings: Bool
        var attentionBias: Bool
        var queryKeyNorm: Bool
        /// `none`, `llama3 (factor F, low L, high H, original N)`, `rope_freqs (K factors)` or `longrope (...)`.
        var ropeScaling: String
        /// The Gemma and Phi-3 options (`none`, or e.g. `embedding scale 25.30, post-sublayer norms, geluTanh MLP, ...`,
        /// `sliding window 2047 on 32 of 32 layers ...`).
        var familyOptions: String
        var contextLength: Int
        var parameters: ParameterCounts
        var prunable: PrunableCounts
        var perLayer: [LayerRow]
    }
    struct ParameterCounts: Codable {
        var attentionAndMLP: Int
        var attention: Int
        var mlp: Int
        var embeddings: Int
        var head: Int
        var norms: Int
        var total: Int
    }
    struct PrunableCounts: Codable {
        var kvGroups: Int
        var mlpChannels: Int
        var layers: Int
        var parametersPerKVGroup: [Int]
        var parametersPerChannel: Int
    }
    struct LayerRow: Codable {
        var layer: Int
        var queryHeads: Int
        var kvHeads: Int
        var headDim: Int
        var ffnDim: Int
        var attentionParameters: Int
        var mlpParameters: Int
    }

    /// The RoPE scaling of a model in words.
    static func describe(_ scaling: RoPEScaling?) -> String {
        switch scaling {
        case nil: return "none"
        case .llama3(let p)?:
            return "llama3 (factor \(p.factor), low \(p.lowFrequencyFactor), high \(p.highFrequencyFactor), original \(p.originalContextLength))"
        case .frequencyFactors(let f)?: return "rope_freqs (\(f.count) factors)"
        case .longRoPE(let p)?:
            return "longrope (\(p.shortFactors.count) short/long factors, original \(p.originalContextLength), attention factor \(p.attentionFactor))"
        }
    }

    /// The Gemma and Phi-3 options of `c` in one line, or `none`.
    static func describeFamilyOptions(_ c: ModelConfig) -> String {
        var parts: [String] = []
        if let s = c.embeddingScale { parts.append(String(format: "embedding scale %.4f", s)) }
        if c.postSublayerNorms { parts.append("post-sublayer norms") }
        if c.mlpActivation != .silu { parts.append("\(c.mlpActivation.rawValue) MLP") }
        if let s = c.attentionScale { parts.append(String(format: "attention scale %.6g", s)) }
        if let local = c.localAttention {
            parts.append("sliding window \(local.window) on \(local.layers.filter { $0 }.count) of \(local.layers.count) layers (rope theta \(local.ropeTheta))")
        }
        return parts.isEmpty ? "none" : parts.joined(separator: ", ")
    }

    static func report(_ checkpoint: LoadedCheckpoint) -> Report {
        let c = checkpoint.config
        let d = c.hiddenSize
        let counts = c.parameterCount
        let rows = c.layers.enumerated().map { i, l in
            LayerRow(layer: i, queryHeads: l.queryHeads, kvHeads: l.kvHeads, headDim: l.headDim, ffnDim: l.ffnDim,
                     attentionParameters: l.hasAttention ? l.attentionParameters(hiddenSize: d, attentionBias: c.attentionBias) : 0,
                     mlpParameters: l.hasMLP ? l.mlpParameters(hiddenSize: d) : 0)
        }
        let perGroup = Set(c.layers.filter { $0.kvHeads > 0 }.map { $0.kvGroupParameterCost(hiddenSize: d, attentionBias: c.attentionBias) })
        return Report(
            path: checkpoint.path, format: "\(checkpoint.format)", architecture: c.architecture, hiddenSize: d,
            vocabSize: c.vocabSize, layers: c.layers.count, normEpsilon: c.normEpsilon, ropeTheta: c.ropeTheta,
            tiedEmbeddings: c.tiedEmbeddings, attentionBias: c.attentionBias, queryKeyNorm: c.queryKeyNorm,
            ropeScaling: Self.describe(c.ropeScaling), familyOptions: Self.describeFamilyOptions(c), contextLength: c.contextLength,
            parameters: ParameterCounts(attentionAndMLP: counts.prunable, attention: counts.attention, mlp: counts.mlp,
                                        embeddings: counts.embeddings, head: counts.head, norms: counts.norms, total: counts.total),
            prunable: PrunableCounts(kvGroups: c.structureCount(.attention), mlpChannels: c.structureCount(.mlp),
                                     layers: c.layers.count, parametersPerKVGroup: perGroup.sorted(), parametersPerChannel: 3 * d),
            perLayer: rows)
    }

    func run() throws {
        let checkpoint = try CheckpointLoader.load(path: model.model)
        let r = Self.report(checkpoint)
        if json { try printJSON(r); return }
        let p = r.parameters
        print("model        \(r.path)")
        print("format       \(r.format), architecture \(r.architecture)")
        print("hidden       \(r.hiddenSize), vocab \(r.vocabSize), layers \(r.layers), context \(r.contextLength)")
        print("norm eps     \(r.normEpsilon), rope theta \(r.ropeTheta), tied embeddings \(r.tiedEmbeddings), qkv bias \(r.attentionBias)")
        print("family       q/k norm \(r.queryKeyNorm), rope scaling \(r.ropeScaling)")
        if r.familyOptions != "none" { print("options      \(r.familyOptions)") }
        print("")
        print("parameters")
        func line(_ name: String, _ v: Int) {
            print("  " + name.padding(toLength: 26, withPad: " ", startingAt: 0) + String(format: "%14d  %6.2f%%", v, 100 * Double(v) / Double(p.total)))
        }
        line("attention + MLP (prunable)", p.attentionAndMLP)
        line("  attention", p.attention)
        line("  MLP", p.mlp)
        line("embeddings", p.embeddings)
        line("head (untied)", p.head)
        line("norms", p.norms)
        line("total", p.total)
        print("")
        print("prunable structures: \(r.prunable.kvGroups) KV groups (\(r.prunable.parametersPerKVGroup.map(String.init).joined(separator: "/")) parameters each), \(r.prunable.mlpChannels) MLP channels (\(r.prunable.parametersPerChannel) each), \(r.prunable.layers) layers")
        print("")
        print("layer  q-heads  kv-heads  head-dim   ffn   attention-params   mlp-params")
        for l in r.perLayer {
            print(String(format: "%5d  %7d  %8d  %8d  %5d  %17d  %11d", l.layer, l.queryHeads, l.kvHeads, l.headDim, l.ffnDim, l.attentionParameters, l.mlpParameters))
        }
    }
}

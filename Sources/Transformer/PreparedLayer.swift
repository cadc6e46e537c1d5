import Checkpoints

/// One decoder layer's weights laid out for the forward pass: q/k/v fused into one matrix and gate/up into
/// another, so each sublayer needs two GEMMs. A masked layer is prepared by gathering only the kept rows and
/// columns (design.md decision 3), so it costs in proportion to what is kept.
struct PreparedLayer: Sendable {
    /// Query heads, KV heads and channels that are actually computed.
    let queryHeads: Int
    let kvHeads: Int
    let headDim: Int
    let ffnDim: Int
    /// Whether each sublayer contributes (false: skipped, adds nothing to the residual).
    let attention: Bool
    let mlp: Bool
    /// [hidden]
    let attentionNorm: [Float]
    /// [queryHeads·hd + 2·kvHeads·hd, hidden]: q rows, then k rows, then v rows.
    let wqkv: [Float]
    /// [queryHeads·hd + 2·kvHeads·hd] or nil.
    let bqkv: [Float]?
    /// [hidden, queryHeads·hd]
    let wo: [Float]
    /// [hidden]
    let mlpNorm: [Float]
    /// [2·ffnDim, hidden]: gate rows, then up rows.
    let wGateUp: [Float]
    /// [hidden, ffnDim]
    let wDown: [Float]

    var queryDim: Int { queryHeads * headDim }
    var kvDim: Int { kvHeads * headDim }
    var qkvDim: Int { queryDim + 2 * kvDim }

    /// Prepares a layer keeping `keptGroups` KV groups and `keptChannels` channels of `weights` (shaped by `spec`).
    init(spec: LayerSpec, weights w: LayerWeights, hidden: Int, mask: StructureMask.Layer?) {
        let hd = spec.headDim
        let g = spec.groupSize
        let groups = mask?.keptKVGroups ?? Array(0..<spec.kvHeads)
        let channels = mask?.keptChannels ?? Array(0..<spec.ffnDim)
        let attentionOn = spec.hasAttention && (mask?.attention ?? true) && !groups.isEmpty
        let mlpOn = spec.hasMLP && (mask?.mlp ?? true) && !channels.isEmpty
        headDim = hd
        attention = attentionOn
        mlp = mlpOn
        attentionNorm = w.attentionNorm
        mlpNorm = w.mlpNorm

        if attentionOn {
            let heads = groups.flatMap { grp in (0..<g).map { grp * g + $0 } }
            queryHeads = heads.count
            kvHeads = groups.count
            var qkv = [Float]()
            qkv.reserveCapacity((heads.count + 2 * groups.count) * hd * hidden)
            func appendRows(_ m: [Float], blocks: [Int]) {
                for b in blocks { qkv.append(contentsOf: m[(b * hd * hidden)..<((b + 1) * hd * hidden)]) }
            }
            appendRows(w.wq, blocks: heads)
            appendRows(w.wk, blocks: groups)
            appendRows(w.wv, blocks: groups)
            wqkv = qkv
            if let bq = w.bq, let bk = w.bk, let bv = w.bv {
                var b = [Float]()
                for h in heads { b.append(contentsOf: bq[(h * hd)..<((h + 1) * hd)]) }
                for k in groups { b.append(contentsOf: bk[(k * hd)..<((k + 1) * hd)]) }
                for k in groups { b.append(contentsOf: bv[(k * hd)..<((k + 1) * hd)]) }
                bqkv = b
            } else {
                bqkv = nil
            }
            // o_proj keeps the columns of the kept heads.
            let qd = spec.queryDim
            let keptQ = heads.count * hd
            var o = [Float](repeating: 0, count: hidden * keptQ)
            w.wo.withUnsafeBufferPointer { src in
                o.withUnsafeMutableBufferPointer { dst in
                    for r in 0..<hidden {
                        for (j, h) in heads.enumerated() {
                            let s = src.baseAddress! + r * qd + h * hd
                            let d = dst.baseAddress! + r * keptQ + j * hd
                            d.update(from: s, count: hd)
                        }
                    }
                }
            }
            wo = o
        } else {
            queryHeads = 0; kvHeads = 0; wqkv = []; bqkv = nil; wo = []
        }

        if mlpOn {
            ffnDim = channels.count
            let dense = channels.count == spec.ffnDim
            var gu = [Float]()
            gu.reserveCapacity(2 * channels.count * hidden)
            if dense {
                gu.append(contentsOf: w.gate)
                gu.append(contentsOf: w.up)
            } else {
                for c in channels { gu.append(contentsOf: w.gate[(c * hidden)..<((c + 1) * hidden)]) }
                for c in channels { gu.append(contentsOf: w.up[(c * hidden)..<((c + 1) * hidden)]) }
            }
            wGateUp = gu
            if dense {
                wDown = w.down
            } else {
                let ff = spec.ffnDim
                let kept = channels.count
                var d = [Float](repeating: 0, count: hidden * kept)
                w.down.withUnsafeBufferPointer { src in
                    d.withUnsafeMutableBufferPointer { dst in
                        for r in 0..<hidden {
                            let s = src.baseAddress! + r * ff
                            let o = dst.baseAddress! + r * kept
                            for (j, c) in channels.enumerated() { o[j] = s[c] }
                        }
                    }
                }
                wDown = d
            }
        } else {
            ffnDim = 0; wGateUp = []; wDown = []
        }
    }
}

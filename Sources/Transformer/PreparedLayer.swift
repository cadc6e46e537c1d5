import Checkpoints
import Kernels

/// One decoder layer's weights laid out for the forward pass: q/k/v fused into one matrix and gate/up into
/// another, so each sublayer needs two GEMMs. The dense layer shares the model's stored matrices
/// (`FusedLayerWeights`); a masked layer is prepared by gathering only the kept rows and columns from them
/// (design.md decision 3), so it costs in proportion to what is kept. An int8 layer gathers the same rows
/// and columns from the once-quantized dense weights (`int8`) and leaves the Float32 matrices empty.
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
    /// [queryHeads·hd + 2·kvHeads·hd] or nil: gathered with the rows of `wqkv`, so a pruned head or KV group
    /// takes its bias rows with it.
    let bqkv: [Float]?
    /// Per-head q and k RMSNorm weights [headDim] (Qwen3) or nil. Every head shares them, so pruning never
    /// gathers them.
    let qNorm: [Float]?
    let kNorm: [Float]?
    /// [hidden, queryHeads·hd]
    let wo: [Float]
    /// [hidden]
    let mlpNorm: [Float]
    /// [2·ffnDim, hidden]: gate rows, then up rows.
    let wGateUp: [Float]
    /// [ffnDim, hidden]: down_proj transposed (`FusedLayerWeights.wDownT`), one row per kept channel.
    let wDownT: [Float]
    /// RMSNorm weights [hidden] of the attention and MLP outputs before the residual add (Gemma), or nil. Like the
    /// q/k norms they act on the whole residual width, so pruning never gathers them.
    let postAttentionNorm: [Float]?
    let postMLPNorm: [Float]?
    /// The projections in int8 (then `wqkv`, `wo`, `wGateUp` and `wDownT` are empty), or nil for Float32.
    let int8: Int8Projections?

    /// For each computed query head, the index of its KV group among the computed ones ([queryHeads]).
    let queryGroups: [Int]

    var queryDim: Int { queryHeads * headDim }
    var kvDim: Int { kvHeads * headDim }
    var qkvDim: Int { queryDim + 2 * kvDim }

    /// Prepares a layer keeping the KV groups and channels `mask` keeps (nil: all) of the model's stored layer `f`;
    /// with `quantized` (the same layer's dense weights in int8) the projections are gathered in int8 instead. A
    /// sublayer that keeps everything shares `f`'s matrices instead of copying them.
    init(fused f: FusedLayerWeights, quantized: QuantizedLayerWeights? = nil, mask: StructureMask.Layer?) {
        let spec = f.spec, hidden = f.hidden
        let hd = spec.headDim
        let g = spec.groupSize
        let groups = mask?.keptKVGroups ?? Array(0..<spec.kvHeads)
        let channels = mask?.keptChannels ?? Array(0..<spec.ffnDim)
        let attentionOn = spec.hasAttention && (mask?.attention ?? true) && !groups.isEmpty
        let mlpOn = spec.hasMLP && (mask?.mlp ?? true) && !channels.isEmpty
        headDim = hd
        attention = attentionOn
        mlp = mlpOn
        attentionNorm = f.attentionNorm
        mlpNorm = f.mlpNorm
        qNorm = f.qNorm
        kNorm = f.kNorm
        postAttentionNorm = f.postAttentionNorm
        postMLPNorm = f.postMLPNorm
        var qkvInt8 = Int8Matrix.empty(columns: hidden)
        var oInt8 = Int8Matrix.empty(columns: 0)
        var gateUpInt8 = Int8Matrix.empty(columns: hidden)
        var downInt8 = Int8Matrix.empty(columns: 0)

        if attentionOn {
            let heads = mask?.queryHeads(spec) ?? groups.flatMap { grp in (0..<g).map { grp * g + $0 } }
            queryHeads = heads.count
            kvHeads = groups.count
            queryGroups = heads.map { h in groups.firstIndex(of: h / g) ?? 0 }   // validated: every head's group is kept
            if let bq = f.bq, let bk = f.bk, let bv = f.bv {
                var b = [Float]()
                for h in heads { b.append(contentsOf: bq[(h * hd)..<((h + 1) * hd)]) }
                for k in groups { b.append(contentsOf: bk[(k * hd)..<((k + 1) * hd)]) }
                for k in groups { b.append(contentsOf: bv[(k * hd)..<((k + 1) * hd)]) }
                bqkv = b
            } else {
                bqkv = nil
            }
            if let q = quantized {
                qkvInt8 = Int8Matrix.stackingRowBlocks([(q.wq, heads, hd), (q.wk, groups, hd), (q.wv, groups, hd)])
                oInt8 = q.wo.keepingColumnBlocks(heads, blockSize: hd)
                wqkv = []; wo = []
            } else if groups.count == spec.kvHeads && heads.count == spec.queryHeads {   // ascending, unique: all of them
                wqkv = f.wqkv
                wo = f.wo
            } else {
                wqkv = Self.rowBlocks(f.wqkv, [(0, heads), (f.keyOffset, groups), (f.valueOffset, groups)], blockRows: hd, columns: hidden)
                wo = Self.columnBlocks(f.wo, rows: hidden, columns: spec.queryDim, blocks: heads, blockSize: hd)
            }
        } else {
            queryHeads = 0; kvHeads = 0; queryGroups = []; wqkv = []; bqkv = nil; wo = []
        }

        if mlpOn {
            ffnDim = channels.count
            if let q = quantized {
                gateUpInt8 = Int8Matrix.stackingRowBlocks([(q.gate, channels, 1), (q.up, channels, 1)])
                downInt8 = q.down.keepingColumnBlocks(channels, blockSize: 1)
                wGateUp = []; wDownT = []
            } else if channels.count == spec.ffnDim {
                wGateUp = f.wGateUp
                wDownT = f.wDownT
            } else {
                wGateUp = Self.rowBlocks(f.wGateUp, [(0, channels), (f.upOffset, channels)], blockRows: 1, columns: hidden)
                wDownT = Self.rowBlocks(f.wDownT, [(0, channels)], blockRows: 1, columns: hidden)
            }
        } else {
            ffnDim = 0; wGateUp = []; wDownT = []
        }
        int8 = quantized == nil ? nil : Int8Projections(qkv: qkvInt8, o: oInt8, gateUp: gateUpInt8, down: downInt8)
    }

    /// The row blocks `blocks` (each `blockRows` rows of `columns`) of each matrix stored in `m` from element
    /// `offset` on, stacked in order.
    private static func rowBlocks(_ m: [Float], _ pieces: [(offset: Int, blocks: [Int])], blockRows: Int, columns: Int) -> [Float] {
        let block = blockRows * columns
        let total = pieces.reduce(0) { $0 + $1.blocks.count * block }
        return [Float](unsafeUninitializedCapacity: total) { out, initialized in
            m.withUnsafeBufferPointer { src in
                var next = out.baseAddress!
                for (offset, blocks) in pieces {
                    for b in blocks {
                        next.initialize(from: src.baseAddress! + offset + b * block, count: block)
                        next += block
                    }
                }
            }
            initialized = total
        }
    }

    /// Every row of `m` ([rows, columns]) keeping only column blocks `blocks` (each `blockSize` wide), in order.
    private static func columnBlocks(_ m: [Float], rows: Int, columns: Int, blocks: [Int], blockSize: Int) -> [Float] {
        gatherColumnBlocks(m, rows: rows, columns: columns, blocks: blocks, blockSize: blockSize, zero: 0)
    }
}

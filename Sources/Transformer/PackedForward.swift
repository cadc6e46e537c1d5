import Kernels

/// A run of consecutive rows in a packed batch. A root segment is a sequence starting at position 0; a child
/// segment continues its parent (a root): its positions start at the parent's length and its attention covers
/// all of the parent's rows, then its own rows causally. Several children may share one parent, so a context
/// common to several continuations is computed once, in the same pass as the continuations.
struct PackedSegment {
    /// First row in the packed batch.
    let start: Int
    /// Rows (tokens) in this segment.
    let length: Int
    /// Index of the parent segment (a root), or nil for a root.
    let parent: Int?
}

extension PreparedModel {
    /// The decoder stack over a packed batch of segments without padding: every GEMM runs over all rows at once
    /// (one read of the weights per layer), and attention runs per segment and head, spread over the cores.
    /// `tokens` holds every segment's tokens at its rows. Returns the final-normed hidden states [rows, hidden].
    func runPacked(tokens: [Int], segments: [PackedSegment]) -> [Float] {
        let n = tokens.count
        // Position of every row: its index in its segment, plus the parent's length.
        var positions = [Int](repeating: 0, count: n)
        for s in segments {
            let offset = s.parent.map { segments[$0].length } ?? 0
            for i in 0..<s.length { positions[s.start + i] = offset + i }
        }
        return decoderStack(tokens: tokens, positions: positions, observer: nil) { layer, index, qkv, out in
            attendPacked(layer: layer, window: config.attentionWindow(layer: index), segments: segments, qkv: qkv, out: out)
        }
    }

    /// Causal grouped-query attention over packed segments (RoPE already applied; the layer's sliding window, if any). Each (segment, query head)
    /// is one work item: scores against the parent's keys and the segment's own keys up to the query, softmax,
    /// weighted sum of values. Written by hand rather than with BLAS: the pieces are small, and BLAS is not
    /// called from several threads at once.
    private func attendPacked(layer: PreparedLayer, window: Int?, segments: [PackedSegment], qkv: UnsafeMutablePointer<Float>,
                              out: UnsafeMutablePointer<Float>) {
        let hd = layer.headDim
        let stride = layer.qkvDim
        let scale = attentionScale(headDim: hd)
        let heads = layer.queryHeads
        let longest = segments.map { $0.length + ($0.parent.map { segments[$0].length } ?? 0) }.max() ?? 0
        Parallel.forEachChunk(segments.count * heads) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: longest)   // [visible keys] for one query
            defer { scores.deallocate() }
            for item in range {
                let segment = segments[item / heads]
                let h = item % heads
                let kvOffset = layer.queryDim + layer.queryGroups[h] * hd
                let parentStart = segment.parent.map { segments[$0].start } ?? 0
                let parentLength = segment.parent.map { segments[$0].length } ?? 0
                // Row of key j (parent rows first, then own rows).
                @inline(__always) func keyRow(_ j: Int) -> Int {
                    j < parentLength ? parentStart + j : segment.start + (j - parentLength)
                }
                for t in 0..<segment.length {
                    let row = segment.start + t
                    let q = UnsafePointer(qkv + row * stride + h * hd)
                    let visible = parentLength + t + 1
                    // Key j sits at position j; a sliding window starts at `first`.
                    let first = window.map { max(0, visible - $0) } ?? 0
                    for j in first..<visible {
                        scores[j - first] = Self.dot(q, UnsafePointer(qkv + keyRow(j) * stride + kvOffset), count: hd) * scale
                    }
                    Ops.softmaxInPlace(scores, count: visible - first)
                    let o = out + row * layer.queryDim + h * hd
                    o.update(repeating: 0, count: hd)
                    for j in first..<visible {
                        Ops.addScaled(UnsafePointer(qkv + keyRow(j) * stride + kvOffset + layer.kvDim), by: scores[j - first], into: o, count: hd)
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 8 <= count {
            acc += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self) * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
        }
        var sum = acc.sum()
        while i < count { sum += a[i] * b[i]; i += 1 }
        return sum
    }
}

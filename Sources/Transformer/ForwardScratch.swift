import Kernels

/// The activation buffers of one pass of `runLayers` over `rows` positions, as llama2.c's `RunState`: one
/// zero-filled allocation per pass, sized for the widest layer of the pass, freed with the value. Each buffer is
/// row-major; a layer narrower than the widest uses the front of it with its own width as the row stride, so
/// every GEMM sees exactly the pointers and leading dimensions it saw when each buffer was its own array.
final class ForwardScratch {
    /// Positions in the pass.
    let rows: Int
    /// [rows, hidden]: a sublayer's RMS-normed input; once the sublayer's first projection has read it, the output
    /// of a sublayer that has a post-norm (Gemma), normed there before it joins the residual stream.
    let normed: UnsafeMutablePointer<Float>
    /// [rows, qkvDim] (widest layer): every row's q heads | k heads | v heads, RoPE applied in place.
    let qkv: UnsafeMutablePointer<Float>
    /// [rows, queryDim] (widest layer): the concatenated attention head outputs, the input of o_proj.
    let attended: UnsafeMutablePointer<Float>
    /// [rows, 2 · ffnDim] (widest layer): every row's gate | up projections.
    let gateUp: UnsafeMutablePointer<Float>
    /// [rows, ffnDim] (widest layer): the gated activation, the input of down_proj.
    let activated: UnsafeMutablePointer<Float>
    /// int8 projections only (else empty): quantized activations [rows, widest input] and Int32 products
    /// [rows, widest output].
    var int8: Int8Scratch
    /// int8 only (else empty): the gate/up projection's scratch, whose products stay until down_proj's inputs are
    /// made from them (`Int8Linear.multiply`) while `int8` serves down_proj.
    var int8GateUp: Int8Scratch

    /// The one allocation the Float buffers above point into.
    private let storage: UnsafeMutablePointer<Float>

    /// Buffers for `rows` positions through `layers` of a model of width `hidden`; with `int8`, also the int8
    /// projections' scratch. `fused` (an int8 pass without an observer): the layers make their RMS-normed rows
    /// and down_proj's inputs where they quantize them (`decoderStack`), so `normed` is only needed for post-sublayer
    /// norms, `gateUp` and `activated` only for MLPs with a post-norm, `int8` holds no gate/up products and
    /// `int8GateUp` does; these buffers are then empty instead of zero-filled on every pass.
    init(rows: Int, hidden: Int, layers: [PreparedLayer], int8: Bool, fused: Bool = false) {
        let widestQKV = layers.map(\.qkvDim).max() ?? 0
        let widestQuery = layers.map(\.queryDim).max() ?? 0
        let widestFFN = layers.map(\.ffnDim).max() ?? 0
        let plainMLPs = !fused || layers.contains { $0.mlp && $0.postMLPNorm != nil }
        let plainFFN = plainMLPs ? widestFFN : 0
        let needsNormed = plainMLPs || layers.contains { $0.postAttentionNorm != nil }
        let widths = [needsNormed ? hidden : 0, widestQKV, widestQuery, 2 * plainFFN, plainFFN]
        let sizes = widths.map { rows * $0 }
        let total = max(1, sizes.reduce(0, +))
        // Plain malloc alignment, as the arrays had: 64-byte-aligned storage (posix_memalign) raised a stories260K
        // prune run's peak RSS from 108 to 129 MiB (glibc fragmentation; PlanCommandTests holds it within 10 %).
        storage = UnsafeMutablePointer<Float>.allocate(capacity: total)
        storage.initialize(repeating: 0, count: total)
        var offsets = [Int](), next = 0
        for size in sizes { offsets.append(next); next += size }
        self.rows = rows
        normed = storage + offsets[0]
        qkv = storage + offsets[1]
        attended = storage + offsets[2]
        gateUp = storage + offsets[3]
        activated = storage + offsets[4]
        self.int8 = Int8Scratch(rows: int8 ? rows : 0, inputs: max(hidden, widestQuery, widestFFN),
                                outputs: max(widestQKV, hidden, 2 * plainFFN))
        let fusedMLPs = int8 && fused && layers.contains { $0.mlp && $0.postMLPNorm == nil }
        int8GateUp = Int8Scratch(rows: fusedMLPs ? rows : 0, inputs: hidden, outputs: 2 * widestFFN)
    }

    deinit {
        storage.deallocate()
    }
}

import Foundation

/// How a model adjusts RoPE's inverse frequencies for contexts longer than it was first trained on. Every case
/// ends as one divisor per frequency (`inverseFrequencies`), the form llama.cpp stores.
public enum RoPEScaling: Codable, Sendable, Equatable {
    /// Llama 3.x (`rope_type: "llama3"` in config.json), as transformers' `_compute_llama3_parameters`.
    case llama3(Llama3RoPEScaling)
    /// One divisor per frequency, [headDim / 2], as a GGUF's `rope_freqs.weight` stores them (llama.cpp's
    /// converter writes the llama3 adjustment this way and keeps no llama3 parameters).
    case frequencyFactors([Float])
    /// Phi-3's LongRoPE (`rope_type: "longrope"`, formerly `"su"`): a short and a long set of divisors, chosen by
    /// how far a call's positions reach, and a factor on cos and sin.
    case longRoPE(LongRoPEScaling)

    /// The inverse frequencies of a head of width `headDim` at base `theta`, adjusted by `scaling` (nil: plain RoPE),
    /// for a call whose positions are `0..<positions` or part of them (only LongRoPE depends on it).
    /// Plain: `1 / theta^(2i / headDim)` in Float32, like transformers' default RoPE.
    public static func inverseFrequencies(headDim: Int, theta: Float, scaling: RoPEScaling?, positions: Int = 0) -> [Float] {
        let plain = (0..<(headDim / 2)).map { i in
            Float(1) / Float(Foundation.pow(Double(theta), Double(Float(2 * i) / Float(headDim))))
        }
        switch scaling {
        case nil:
            return plain
        case .llama3(let p)?:
            return p.adjust(plain)
        case .frequencyFactors(let factors)?:
            // llama.cpp divides the angle by the factor (ggml_rope_ext's freq_factors).
            return divide(plain, by: factors)
        case .longRoPE(let p)?:
            return divide(plain, by: p.factors(positions: positions))
        }
    }

    /// The factor on cos and sin (so on q·k, squared): LongRoPE's attention factor, else 1.
    public var rotationScale: Float {
        if case .longRoPE(let p) = self { return p.attentionFactor }
        return 1
    }

    /// `frequencies[i] / divisors[i]` (a frequency without a divisor is kept).
    private static func divide(_ frequencies: [Float], by divisors: [Float]) -> [Float] {
        frequencies.enumerated().map { i, f in i < divisors.count ? f / divisors[i] : f }
    }
}

/// Phi-3's LongRoPE as transformers' `_compute_longrope_parameters` and `longrope_frequency_update` apply it:
/// frequency i is divided by `shortFactors[i]` while a call's positions stay within `originalContextLength`
/// (transformers: max position id + 1 <= original_max_position_embeddings), by `longFactors[i]` beyond; cos and
/// sin are multiplied by `attentionFactor` either way. llama.cpp (`rope_factors_short/long.weight`,
/// `rope.scaling.attn_factor`) chooses the set by the context size instead; the two agree within the original
/// context, which is where pruning and evaluation run.
public struct LongRoPEScaling: Codable, Sendable, Equatable {
    /// `short_factor`: [headDim / 2] divisors within the original context.
    public var shortFactors: [Float]
    /// `long_factor`: [headDim / 2] divisors beyond it.
    public var longFactors: [Float]
    /// `original_max_position_embeddings` (llama.cpp `rope.scaling.original_context_length`).
    public var originalContextLength: Int
    /// The factor on cos and sin (`attention_factor`; transformers' default
    /// sqrt(1 + ln(max_position_embeddings / original) / ln(original)) when the ratio exceeds 1, else 1).
    public var attentionFactor: Float

    /// LongRoPE parameters.
    public init(shortFactors: [Float], longFactors: [Float], originalContextLength: Int, attentionFactor: Float) {
        self.shortFactors = shortFactors
        self.longFactors = longFactors
        self.originalContextLength = originalContextLength
        self.attentionFactor = attentionFactor
    }

    /// transformers' (and llama.cpp's converter's) default attention factor for a context extended `factor` times
    /// (`max_position_embeddings / original_max_position_embeddings` unless config.json states `factor`):
    /// sqrt(1 + ln(factor) / ln(original)) when `factor` > 1, else 1.
    public static func defaultAttentionFactor(factor: Double, originalContextLength: Int) -> Float {
        guard factor > 1, originalContextLength > 1 else { return 1 }
        return Float((1 + Foundation.log(factor) / Foundation.log(Double(originalContextLength))).squareRoot())
    }

    /// The divisors of a call covering positions `0..<positions`.
    public func factors(positions: Int) -> [Float] {
        positions > originalContextLength ? longFactors : shortFactors
    }
}

/// The parameters of Llama 3.x RoPE scaling (config.json `rope_scaling` / `rope_parameters` with
/// `rope_type: "llama3"`): wavelengths shorter than `originalContextLength / highFrequencyFactor` are kept,
/// longer than `originalContextLength / lowFrequencyFactor` are divided by `factor`, and those between are
/// interpolated.
public struct Llama3RoPEScaling: Codable, Sendable, Equatable {
    /// `factor`: the divisor of the low frequencies.
    public var factor: Float
    /// `low_freq_factor`.
    public var lowFrequencyFactor: Float
    /// `high_freq_factor`.
    public var highFrequencyFactor: Float
    /// `original_max_position_embeddings`.
    public var originalContextLength: Int

    /// Llama 3.x scaling parameters.
    public init(factor: Float, lowFrequencyFactor: Float, highFrequencyFactor: Float, originalContextLength: Int) {
        self.factor = factor
        self.lowFrequencyFactor = lowFrequencyFactor
        self.highFrequencyFactor = highFrequencyFactor
        self.originalContextLength = originalContextLength
    }

    /// transformers' `_compute_llama3_parameters`, step by step in Float32 as torch does it on a float32 tensor.
    func adjust(_ invFreq: [Float]) -> [Float] {
        let old = Float(originalContextLength)
        let lowWavelength = old / lowFrequencyFactor
        let highWavelength = old / highFrequencyFactor
        return invFreq.map { f in
            let wavelength = 2 * Float.pi / f
            let scaled = wavelength > lowWavelength ? f / factor : f
            if wavelength < highWavelength || wavelength > lowWavelength { return scaled }
            let smooth = (old / wavelength - lowFrequencyFactor) / (highFrequencyFactor - lowFrequencyFactor)
            return (1 - smooth) * scaled / factor + smooth * scaled
        }
    }

    /// The divisor per frequency that llama.cpp's `convert_hf_to_gguf.py` writes as `rope_freqs.weight` for
    /// this scaling (computed as it does: wavelengths in Double from Float32 frequencies).
    public func frequencyFactors(headDim: Int, theta: Float) -> [Float] {
        let old = Double(originalContextLength)
        let low = Double(lowFrequencyFactor), high = Double(highFrequencyFactor), factor = Double(self.factor)
        return RoPEScaling.inverseFrequencies(headDim: headDim, theta: theta, scaling: nil).map { f in
            let wavelength = 2 * Double.pi / Double(f)
            if wavelength < old / high { return 1 }
            if wavelength > old / low { return Float(factor) }
            let smooth = (old / wavelength - low) / (high - low)
            return Float(1 / ((1 - smooth) / factor + smooth))
        }
    }
}

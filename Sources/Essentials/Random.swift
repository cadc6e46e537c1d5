/// xoshiro256** (Blackman & Vigna), seeded through SplitMix64. Explicit, copyable state so runs can save and
/// restore every generator exactly.
public struct Xoshiro256: RandomNumberGenerator, Codable, Sendable, Equatable {
    /// The four state words.
    public var state: [UInt64]

    /// Seeds the generator; the same seed always gives the same stream.
    public init(seed: UInt64) {
        var seeder = SplitMix64(seed: seed)
        state = [seeder.next(), seeder.next(), seeder.next(), seeder.next()]
    }

    @inlinable
    static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Next 64 random bits.
    @inlinable
    public mutating func next() -> UInt64 {
        let result = Xoshiro256.rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = Xoshiro256.rotl(state[3], 45)
        return result
    }

    /// A uniform Double in [0, 1) with 53 random bits.
    @inlinable
    public mutating func nextUnitDouble() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// A uniform Float in [0, 1) with 24 random bits.
    @inlinable
    public mutating func nextUnitFloat() -> Float {
        Float(next() >> 40) * 0x1p-24
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny seeded generator (calibration samples, data order) and the seeder of
/// `Xoshiro256`.
/// Its stream is fixed by the algorithm, so a seed gives the same sample on every platform and Swift version.
public struct SplitMix64: RandomNumberGenerator, Codable, Sendable, Equatable {
    /// The whole generator state.
    public private(set) var state: UInt64

    /// A generator seeded with `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in `0..<bound` (Lemire's multiply-shift with rejection, so no modulo bias).
    public mutating func uniform(below bound: Int) -> Int {
        precondition(bound > 0, "uniform(below:) needs a positive bound")
        let b = UInt64(bound)
        var product = next().multipliedFullWidth(by: b)
        if product.low < b {
            let threshold = (0 &- b) % b
            while product.low < threshold { product = next().multipliedFullWidth(by: b) }
        }
        return Int(product.high)
    }
}

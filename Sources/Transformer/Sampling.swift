import Essentials
import Foundation
import Kernels

/// Next-token choice for generation: greedy at temperature 0, else temperature-scaled softmax with nucleus (top-p)
/// truncation, drawn from an explicit seeded generator.
public struct Sampler: Sendable {
    /// Softmax temperature; 0 means greedy (argmax, lowest id on ties).
    public var temperature: Float
    /// Nucleus mass in (0, 1]; 1 disables truncation.
    public var topP: Float
    /// The generator state.
    public var rng: Xoshiro256

    public init(temperature: Float, topP: Float, seed: UInt64) {
        self.temperature = temperature
        self.topP = topP
        self.rng = Xoshiro256(seed: seed)
    }

    /// Picks a token id from one position's logits.
    public mutating func next(_ logits: [Float]) -> Int {
        if temperature <= 0 {
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            return best
        }
        let maxLogit = logits.max() ?? 0
        var probs = logits.map { Foundation.exp(Double(($0 - maxLogit) / temperature)) }
        let total = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= total }
        var order = Array(probs.indices)
        if topP < 1 {
            order.sort { probs[$0] > probs[$1] || (probs[$0] == probs[$1] && $0 < $1) }
            var mass = 0.0
            var cut = order.count
            for (i, id) in order.enumerated() {
                mass += probs[id]
                if mass >= Double(topP) { cut = i + 1; break }
            }
            order = Array(order.prefix(cut))
        }
        let kept = order.reduce(0.0) { $0 + probs[$1] }
        var u = rng.nextUnitDouble() * kept
        for id in order {
            u -= probs[id]
            if u < 0 { return id }
        }
        return order.last ?? 0
    }
}

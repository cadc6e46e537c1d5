/// How far one computation moves each window's mean NLL away from a reference computation of the same windows
/// (int8 against f32, f32 on rounded weights against f32): relative differences |other − reference| / reference
/// per window, summarised.
public struct WindowMovement: Codable, Sendable, Equatable {
    /// Windows compared.
    public var windows: Int
    /// Mean over windows of |other − reference| / reference.
    public var meanRelative: Double
    /// The largest single window's |other − reference| / reference (0 for no windows).
    public var maxRelative: Double
    /// The window with `maxRelative` (the first on ties; nil for no windows).
    public var worstWindow: Int?
    /// Windows moved by more than `threshold` (relative).
    public var windowsOverThreshold: Int
    /// The threshold of `windowsOverThreshold`.
    public var threshold: Double

    /// Compares `other` with `reference`, window by window (equal counts; reference NLLs positive, a programmer
    /// error otherwise).
    public init(reference: [Double], other: [Double], threshold: Double = 0.01) {
        precondition(reference.count == other.count, "WindowMovement: \(reference.count) reference windows, \(other.count) others")
        let relative = zip(reference, other).map { abs($1 - $0) / $0 }
        windows = relative.count
        meanRelative = relative.isEmpty ? 0 : relative.reduce(0, +) / Double(relative.count)
        worstWindow = relative.indices.max { relative[$0] < relative[$1] || (relative[$0] == relative[$1] && $0 > $1) }
        maxRelative = worstWindow.map { relative[$0] } ?? 0
        windowsOverThreshold = relative.filter { $0 > threshold }.count
        self.threshold = threshold
    }
}

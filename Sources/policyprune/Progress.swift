import Foundation

/// A one-line progress bar on stderr (redrawn in place on a terminal, printed every few seconds otherwise).
final class ProgressBar {
    private let label: String
    private let total: Int
    private let start = Date()
    private var lastDraw = Date.distantPast
    private let interactive = isatty(STDERR_FILENO) != 0
    private let quiet: Bool

    init(_ label: String, total: Int, quiet: Bool = isSecondaryRank) {
        self.label = label
        self.total = total
        self.quiet = quiet
    }

    /// Updates the bar: `done` of `total` units, with a rate and extra text.
    func update(_ done: Int, rate: Double, unit: String, extra: String = "") {
        if quiet { return }
        let now = Date()
        let finished = done >= total
        guard finished || now.timeIntervalSince(lastDraw) >= (interactive ? 0.2 : 5) else { return }
        lastDraw = now
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let elapsed = now.timeIntervalSince(start)
        let eta = fraction > 0 ? elapsed / fraction - elapsed : 0
        let line = String(format: "%@ [%@] %d/%d  %.0f %@/s  elapsed %@  ETA %@%@", label, bar, done, total, rate, unit,
                          Self.clock(elapsed), Self.clock(eta), extra.isEmpty ? "" : "  " + extra)
        let text = interactive ? "\r\u{1B}[2K" + line + (finished ? "\n" : "") : line + "\n"
        FileHandle.standardError.write(text.data(using: .utf8)!)
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

/// True in ranks 1... of an `mpirun` run: only rank 0 prints progress (errors are printed by every rank).
nonisolated(unsafe) var isSecondaryRank = false

/// Writes a line to stderr (rank 0 only).
func note(_ text: String) {
    if isSecondaryRank { return }
    FileHandle.standardError.write((text + "\n").data(using: .utf8)!)
}

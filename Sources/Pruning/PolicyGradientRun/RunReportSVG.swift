import Checkpoints
import Foundation

/// `report.svg` of a run, written by hand (no plotting dependency): per-layer kept KV groups and MLP channels of
/// the final plan (bars) and of the initial plan (ticks), the training loss with the baseline δ, and the held-out
/// NLL of the hard mask.
public enum RunReportSVG {
    /// The whole document.
    public static func render(config: ModelConfig, finalPlan: PrunePlan, initialPlan: PrunePlan?, steps: [StepLogRecord],
                              heldout: [HeldoutLogRecord], title: String) -> String {
        let width = 960.0
        var body = ""
        var y = 40.0
        body += text(20, 24, escape(title), size: 15, weight: "bold")
        body += text(20, y, String(format: "achieved rate (attention+MLP): %.4f; kept parameters %d of %d", finalPlan.achievedRate.attentionMLP,
                                   finalPlan.keptParameters.prunable, finalPlan.denseParameters.prunable), size: 12)
        y += 20
        for (kind, name) in [(StructureKind.attention, "kept KV groups per layer"), (.mlp, "kept MLP channels per layer")] {
            body += layerBars(config: config, final: finalPlan, initial: initialPlan, kind: kind, title: name,
                              frame: Frame(x: 60, y: y, width: width - 90, height: 170))
            y += 220
        }
        let lossPoints = steps.compactMap { r in r.meanLoss.map { (Double(r.iteration), $0) } }
        let basePoints = steps.compactMap { r in r.baseline.map { (Double(r.iteration), $0) } }
        body += lineChart(series: [("mean sample loss", "#9ab", lossPoints), ("baseline δ", "#c33", basePoints)],
                          title: "training loss L(m) on the calibration batch (nats/token)", xLabel: "iteration",
                          frame: Frame(x: 60, y: y, width: width - 90, height: 200))
        y += 250
        let held = heldout.map { (Double($0.iteration), $0.meanNLL) }
        let sampled = heldout.compactMap { r in r.sampledMeanNLL.map { (Double(r.iteration), $0) } }
        var heldSeries = [("hard mask (the plan returned)", "#363", held)]
        if !sampled.isEmpty { heldSeries.append(("sampled masks (what the estimator optimises)", "#c80", sampled)) }
        if let best = heldout.filter({ $0.best == true }).last {
            heldSeries.append(("returned: best hard mask", "#c33", [(Double(best.iteration), best.meanNLL)]))
        }
        body += lineChart(series: heldSeries,
                          title: "held-out NLL on C4 validation (nats/token): hard mask vs sampled masks", xLabel: "iteration", markers: true,
                          frame: Frame(x: 60, y: y, width: width - 90, height: 200))
        y += 250
        return """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(y))" viewBox="0 0 \(Int(width)) \(Int(y))" font-family="sans-serif">
        <rect width="100%" height="100%" fill="white"/>
        \(body)</svg>

        """
    }

    struct Frame {
        var x: Double, y: Double, width: Double, height: Double
    }

    static func layerBars(config: ModelConfig, final: PrunePlan, initial: PrunePlan?, kind: StructureKind, title: String,
                          frame f: Frame) -> String {
        let n = config.layers.count
        var out = text(f.x, f.y + 12, title + " (fraction of the layer; bars: final plan, ticks: initial plan)", size: 13, weight: "bold")
        let top = f.y + 22, h = f.height - 22
        out += axes(Frame(x: f.x, y: top, width: f.width, height: h))
        for v in [0.0, 0.5, 1.0] {
            out += text(f.x - 8, top + h * (1 - v) + 4, String(format: "%.1f", v), size: 10, anchor: "end")
        }
        let slot = f.width / Double(max(n, 1))
        func fraction(_ plan: PrunePlan, _ l: Int) -> Double {
            let total = config.structureCount(kind, layer: l)
            guard total > 0 else { return 0 }
            let kept = kind == .attention ? plan.layers[l].keptKVGroups.count : plan.layers[l].keptChannels.count
            return Double(kept) / Double(total)
        }
        for l in 0..<n {
            let v = fraction(final, l)
            let x = f.x + Double(l) * slot + slot * 0.15
            out += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\"/>\n",
                          x, top + h * (1 - v), slot * 0.7, h * v, kind == .attention ? "#4a7ab0" : "#d08a30")
            if let initial, initial.layers.count == n {
                let u = fraction(initial, l)
                out += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" stroke-width=\"2\"/>\n",
                              x - slot * 0.1, top + h * (1 - u), x + slot * 0.8, top + h * (1 - u))
            }
            if n <= 40 || l % 5 == 0 {
                out += text(x + slot * 0.35, top + h + 13, "\(l)", size: 9, anchor: "middle")
            }
        }
        return out
    }

    static func lineChart(series: [(String, String, [(Double, Double)])], title: String, xLabel: String,
                          markers: Bool = false, frame f: Frame) -> String {
        var out = text(f.x, f.y + 12, title, size: 13, weight: "bold")
        let top = f.y + 22, h = f.height - 22
        out += axes(Frame(x: f.x, y: top, width: f.width, height: h))
        let all = series.flatMap { $0.2 }.filter { $0.1.isFinite }
        guard let xMin = all.map(\.0).min(), let xMax = all.map(\.0).max(),
              let yMin = all.map(\.1).min(), let yMax = all.map(\.1).max() else {
            return out + text(f.x + 10, top + h / 2, "no data", size: 12)
        }
        let xSpan = xMax > xMin ? xMax - xMin : 1
        let pad = yMax > yMin ? (yMax - yMin) * 0.05 : max(abs(yMax) * 0.05, 0.01)
        let lo = yMin - pad, hi = yMax + pad
        func px(_ x: Double) -> Double { f.x + (x - xMin) / xSpan * f.width }
        func py(_ y: Double) -> Double { top + (hi - y) / (hi - lo) * h }
        for i in 0...4 {
            let v = lo + (hi - lo) * Double(i) / 4
            out += text(f.x - 8, py(v) + 4, String(format: "%.3f", v), size: 10, anchor: "end")
        }
        out += text(f.x, top + h + 14, String(format: "%.0f", xMin), size: 10)
        out += text(f.x + f.width, top + h + 14, String(format: "%.0f %@", xMax, xLabel), size: 10, anchor: "end")
        for (i, (name, colour, points)) in series.enumerated() {
            let finite = points.filter { $0.1.isFinite }
            if !finite.isEmpty {
                let path = finite.map { String(format: "%.1f,%.1f", px($0.0), py($0.1)) }.joined(separator: " ")
                out += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(path)\"/>\n"
                if markers {
                    for p in finite {
                        out += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>\n", px(p.0), py(p.1), colour)
                    }
                }
            }
            let lx = f.x + f.width - 200, ly = top + 14 + Double(i) * 16
            out += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"3\"/>\n", lx, ly - 4, lx + 20, ly - 4, colour)
            out += text(lx + 26, ly, escape(name), size: 11)
        }
        return out
    }

    static func axes(_ f: Frame) -> String {
        String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fafafa\" stroke=\"#888\"/>\n",
               f.x, f.y, f.width, f.height)
    }

    static func text(_ x: Double, _ y: Double, _ s: String, size: Int, weight: String = "normal", anchor: String = "start") -> String {
        String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" font-weight=\"%@\" text-anchor=\"%@\">", x, y, size, weight, anchor)
            + s + "</text>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}

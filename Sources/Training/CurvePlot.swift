import Basics
import Foundation

/// `<run>/curves.svg`: the run's curves from its metrics.jsonl, viewable in any browser, redrawn
/// at each validation (and by `nest-train plot RUN`). Four panels against step: training loss;
/// validation loss with the target entropy (the loss an input-blind model reaches); validation
/// accuracy with the prior (always predicting the majority target); learning rate. Each panel
/// has ticks and a grid on both axes and its legend above the plot; validation curves carry
/// their standard-error band and a marker per validation. One `path` per curve.
public enum CurvePlot {
    struct Curve {
        let name: String, color: String
        let points: [(step: Double, value: Double, se: Double?)]
    }

    /// Panel size and the margins that hold titles, legends and tick labels (SVG pixels).
    static let (width, height) = (480.0, 300.0)
    static let (left, right, top, bottom) = (62.0, 16.0, 44.0, 38.0)

    public static func render(metrics path: String) throws -> String {
        guard let text = FileManager.default.contents(atPath: path).flatMap({ String(data: $0, encoding: .utf8) }) else {
            throw NestError(file: path, "cannot read metrics")
        }
        let rows = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        func curve(_ key: String, _ color: String, band: Bool = false) -> Curve {
            Curve(name: key, color: color, points: rows.compactMap { r -> (step: Double, value: Double, se: Double?)? in
                guard let s = (r["step"] as? NSNumber)?.doubleValue, let v = (r[key] as? NSNumber)?.doubleValue, v.isFinite else { return nil }
                let se = band ? (r[key + "_se"] as? NSNumber).map(\.doubleValue).flatMap { $0.isFinite ? $0 : nil } : nil
                return (step: s, value: v, se: se)
            })
        }
        let panels: [(title: String, curves: [Curve])] = [
            ("training loss (nats)", [curve("loss", "#1f77b4")]),
            ("validation loss vs target entropy (nats)", [curve("val_loss", "#d62728", band: true), curve("val_target_entropy", "#7f7f7f", band: true)]),
            ("validation accuracy vs prior", [curve("val_masked_acc", "#2ca02c", band: true), curve("val_prior_acc", "#7f7f7f", band: true)]),
            ("learning rate", [curve("lr", "#9467bd")]),
        ]
        var svg = ##"<?xml version="1.0" encoding="UTF-8"?>"## + "\n"
        svg += ##"<svg xmlns="http://www.w3.org/2000/svg" width="\##(Int(2 * width))" height="\##(Int(2 * height))" font-family="sans-serif" font-size="11">"## + "\n"
        svg += ##"<rect width="100%" height="100%" fill="white"/>"## + "\n"
        for (i, panel) in panels.enumerated() {
            svg += self.panel(panel.title, panel.curves, x0: Double(i % 2) * width, y0: Double(i / 2) * height)
        }
        return svg + "</svg>\n"
    }

    static func panel(_ title: String, _ curves: [Curve], x0: Double, y0: Double) -> String {
        let all = curves.flatMap(\.points)
        let steps = all.map(\.step)
        let (xMin, xMax) = (steps.min() ?? 0, max(steps.max() ?? 1, (steps.min() ?? 0) + 1))
        var yMin = all.map { $0.value - ($0.se ?? 0) }.min() ?? 0, yMax = all.map { $0.value + ($0.se ?? 0) }.max() ?? 1
        if yMax - yMin < 1e-12 { (yMin, yMax) = (yMin - 0.5, yMax + 0.5) }
        let margin = (yMax - yMin) * 0.05
        (yMin, yMax) = (yMin - margin, yMax + margin)
        let (plotLeft, plotTop) = (x0 + left, y0 + top)
        let (plotWidth, plotHeight) = (width - left - right, height - top - bottom)
        func px(_ x: Double) -> Double { plotLeft + (x - xMin) / (xMax - xMin) * plotWidth }
        func py(_ y: Double) -> Double { plotTop + plotHeight - (y - yMin) / (yMax - yMin) * plotHeight }
        func n(_ v: Double) -> String { String(format: "%.1f", v) }

        var g = "<g>"
        g += ##"<text x="\##(n(plotLeft))" y="\##(n(y0 + 16))" font-weight="bold">\##(escape(title))</text>"##
        // The legend, on its own line above the plot.
        var legendX = plotLeft
        for c in curves {
            g += ##"<line x1="\##(n(legendX))" y1="\##(n(y0 + 31))" x2="\##(n(legendX + 16))" y2="\##(n(y0 + 31))" stroke="\##(c.color)" stroke-width="2"/>"##
            let label = c.name + (c.points.contains { $0.se != nil } ? " ± s.e." : "")
            g += ##"<text x="\##(n(legendX + 20))" y="\##(n(y0 + 35))">\##(escape(label))</text>"##
            legendX += 36 + 6.5 * Double(label.count)
        }
        // Grid and tick labels.
        for t in ticks(yMin, yMax) {
            g += ##"<line x1="\##(n(plotLeft))" y1="\##(n(py(t)))" x2="\##(n(plotLeft + plotWidth))" y2="\##(n(py(t)))" stroke="#e5e5e5"/>"##
            g += ##"<text x="\##(n(plotLeft - 5))" y="\##(n(py(t) + 4))" text-anchor="end">\##(label(t))</text>"##
        }
        for t in ticks(xMin, xMax) {
            g += ##"<line x1="\##(n(px(t)))" y1="\##(n(plotTop))" x2="\##(n(px(t)))" y2="\##(n(plotTop + plotHeight))" stroke="#e5e5e5"/>"##
            g += ##"<text x="\##(n(px(t)))" y="\##(n(plotTop + plotHeight + 14))" text-anchor="middle">\##(label(t))</text>"##
        }
        g += ##"<text x="\##(n(plotLeft + plotWidth / 2))" y="\##(n(plotTop + plotHeight + 30))" text-anchor="middle">step</text>"##
        g += ##"<rect x="\##(n(plotLeft))" y="\##(n(plotTop))" width="\##(n(plotWidth))" height="\##(n(plotHeight))" fill="none" stroke="#999"/>"##
        for c in curves {
            // The standard-error band, then the curve, then a marker per validation.
            let banded = c.points.compactMap { p in p.se.map { (p.step, p.value, $0) } }
            if banded.count > 1 {
                let outline = banded.map { "\(n(px($0.0))),\(n(py($0.1 + $0.2)))" } + banded.reversed().map { "\(n(px($0.0))),\(n(py($0.1 - $0.2)))" }
                g += ##"<polygon points="\##(outline.joined(separator: " "))" fill="\##(c.color)" fill-opacity="0.18" stroke="none"/>"##
            }
            let d = c.points.enumerated().map { j, p in "\(j == 0 ? "M" : "L")\(n(px(p.step))) \(n(py(p.value)))" }.joined(separator: " ")
            g += ##"<path d="\##(d)" fill="none" stroke="\##(c.color)" stroke-width="1.5"><title>\##(escape(c.name))</title></path>"##
            if !banded.isEmpty || c.points.count == 1 {
                for p in c.points { g += ##"<circle cx="\##(n(px(p.step)))" cy="\##(n(py(p.value)))" r="2.5" fill="\##(c.color)"/>"## }
            }
        }
        return g + "</g>\n"
    }

    /// About five round ticks (1, 2 or 5 × 10^k apart) inside [lo, hi].
    static func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        guard hi > lo else { return [lo] }
        let raw = (hi - lo) / 5, magnitude = pow(10, (log10(raw)).rounded(.down))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        let first = (lo / step).rounded(.up)
        return stride(from: first, through: (hi / step).rounded(.down), by: 1).map { $0 * step }
    }

    /// A tick value in few characters: 0.0003, 2e-05, 1500, 4.25.
    static func label(_ v: Double) -> String { abs(v) < 1e-12 ? "0" : String(format: "%g", v) }

    /// Writes `<run>/curves.svg` (atomically).
    public static func write(run folder: String) throws {
        let svg = try render(metrics: folder + "/metrics.jsonl")
        try AtomicFile.write(Data(svg.utf8), to: folder + "/curves.svg")
    }

    static func escape(_ s: String) -> String { s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;") }
}

import Foundation
import Formats

/// `<run>/curves.svg`: the run's curves from its metrics.jsonl, viewable in any browser, redrawn
/// at each validation (and by `nest-train plot RUN`). Four panels against step: training loss;
/// validation loss with the target entropy (the loss an input-blind model reaches); validation
/// accuracy with the prior (always predicting the majority target); learning rate. One `path`
/// per curve.
public enum CurvePlot {
    struct Curve { let name: String, color: String, points: [(Double, Double)] }

    public static func render(metrics path: String) throws -> String {
        guard let text = FileManager.default.contents(atPath: path).flatMap({ String(data: $0, encoding: .utf8) }) else {
            throw NestError(file: path, "cannot read metrics")
        }
        let rows = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        func series(_ key: String) -> [(Double, Double)] {
            rows.compactMap { r in
                guard let s = (r["step"] as? NSNumber)?.doubleValue, let v = (r[key] as? NSNumber)?.doubleValue, v.isFinite else { return nil }
                return (s, v)
            }
        }
        let panels: [(title: String, curves: [Curve])] = [
            ("training loss", [Curve(name: "loss", color: "#1f77b4", points: series("loss"))]),
            ("validation loss vs target entropy (nats)", [Curve(name: "val_loss", color: "#d62728", points: series("val_loss")),
                                                         Curve(name: "val_target_entropy", color: "#7f7f7f", points: series("val_target_entropy"))]),
            ("validation accuracy vs prior", [Curve(name: "val_masked_acc", color: "#2ca02c", points: series("val_masked_acc")),
                                              Curve(name: "val_prior_acc", color: "#7f7f7f", points: series("val_prior_acc"))]),
            ("learning rate", [Curve(name: "lr", color: "#9467bd", points: series("lr"))]),
        ]
        let (w, h, pad) = (420.0, 260.0, 40.0)
        var svg = ##"<?xml version="1.0" encoding="UTF-8"?>"## + "\n"
        svg += ##"<svg xmlns="http://www.w3.org/2000/svg" width="\##(Int(2 * w))" height="\##(Int(2 * h))" font-family="sans-serif" font-size="11">"## + "\n"
        for (i, panel) in panels.enumerated() {
            let x0 = Double(i % 2) * w, y0 = Double(i / 2) * h
            let all = panel.curves.flatMap(\.points)
            let (xs, ys) = (all.map(\.0), all.map(\.1))
            let (xMin, xMax) = (xs.min() ?? 0, max(xs.max() ?? 1, (xs.min() ?? 0) + 1))
            var (yMin, yMax) = (ys.min() ?? 0, ys.max() ?? 1)
            if yMax - yMin < 1e-12 { yMin -= 0.5; yMax += 0.5 }
            func px(_ x: Double) -> Double { x0 + pad + (x - xMin) / (xMax - xMin) * (w - 2 * pad) }
            func py(_ y: Double) -> Double { y0 + h - pad - (y - yMin) / (yMax - yMin) * (h - 2 * pad) }
            svg += ##"<g><rect x="\##(x0 + pad)" y="\##(y0 + pad)" width="\##(w - 2 * pad)" height="\##(h - 2 * pad)" fill="none" stroke="#ccc"/>"##
            svg += ##"<text x="\##(x0 + pad)" y="\##(y0 + pad - 8)">\##(escape(panel.title))</text>"##
            svg += ##"<text x="\##(x0 + 2)" y="\##(py(yMax) + 4)">\##(format(yMax))</text><text x="\##(x0 + 2)" y="\##(py(yMin))">\##(format(yMin))</text>"##
            svg += ##"<text x="\##(px(xMax) - 30)" y="\##(y0 + h - pad + 14)">step \##(Int(xMax))</text>"##
            for (k, c) in panel.curves.enumerated() {
                let d = c.points.enumerated().map { j, p in "\(j == 0 ? "M" : "L")\(String(format: "%.1f", px(p.0))) \(String(format: "%.1f", py(p.1)))" }.joined(separator: " ")
                svg += ##"<path d="\##(d)" fill="none" stroke="\##(c.color)" stroke-width="1.5"><title>\##(c.name)</title></path>"##
                svg += ##"<text x="\##(x0 + w - pad - 120)" y="\##(y0 + pad + 14 + 13 * Double(k))" fill="\##(c.color)">\##(c.name)</text>"##
            }
            svg += "</g>\n"
        }
        return svg + "</svg>\n"
    }

    /// Writes `<run>/curves.svg` (atomically).
    public static func write(run folder: String) throws {
        let svg = try render(metrics: folder + "/metrics.jsonl")
        try AtomicFile.write(Data(svg.utf8), to: folder + "/curves.svg")
    }

    static func format(_ v: Double) -> String { abs(v) >= 0.01 || v == 0 ? String(format: "%.3f", v) : String(format: "%.2e", v) }
    static func escape(_ s: String) -> String { s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;") }
}

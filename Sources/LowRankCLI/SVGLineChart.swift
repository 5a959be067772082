import Foundation

/// A line chart as a standalone SVG (one owner of the plot format): series of (x, y) points with
/// markers, a title, labelled axes with round-number ticks (linear or base-10 logarithmic y), light
/// grid lines and a legend. Points flagged `hollow` get an open marker (the legend explains them).
struct SVGLineChart {
    struct Series {
        var name: String
        var points: [(x: Double, y: Double, hollow: Bool)]
    }

    var title: String
    var subtitle: String?
    var xLabel: String
    var yLabel: String
    var logarithmicY = false
    var series: [Series]
    /// A legend line for hollow markers (omitted when no point is hollow).
    var hollowMeaning: String?

    // Tableau 10: distinguishable, and readable for the common colour-vision deficiencies.
    static let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]

    func render(width: Double = 960, height: Double = 560) -> String {
        let left = 84.0, right = 190.0, top = subtitle == nil ? 56.0 : 74.0, bottom = 62.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let all = series.flatMap(\.points)
        let xs = all.map(\.x), ys = all.map { transform($0.y) }
        let xRange = Self.niceRange(xs.min() ?? 0, xs.max() ?? 1)
        let yRange = logarithmicY ? ((ys.min() ?? 0).rounded(.down), (ys.max() ?? 1).rounded(.up)) : Self.niceRange(0, ys.max() ?? 1)
        func px(_ x: Double) -> Double { left + (x - xRange.0) / max(xRange.1 - xRange.0, 1e-12) * plotWidth }
        func py(_ y: Double) -> Double { top + plotHeight - (transform(y) - yRange.0) / max(yRange.1 - yRange.0, 1e-12) * plotHeight }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" \
            font-family="Helvetica, Arial, sans-serif">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="30" font-size="19" font-weight="bold">\(Self.escape(title))</text>

            """
        if let subtitle { svg += "<text x=\"\(left)\" y=\"52\" font-size=\"13\" fill=\"#555\">\(Self.escape(subtitle))</text>\n" }
        // Grid and ticks.
        for tick in Self.ticks(xRange.0, xRange.1, integer: true) {
            let x = px(tick)
            svg += "<line x1=\"\(f(x))\" y1=\"\(f(top))\" x2=\"\(f(x))\" y2=\"\(f(top + plotHeight))\" stroke=\"#eee\"/>\n"
            svg += "<text x=\"\(f(x))\" y=\"\(f(top + plotHeight + 18))\" font-size=\"12\" text-anchor=\"middle\">\(Self.label(tick))</text>\n"
        }
        let yTicks = logarithmicY ? Array(stride(from: yRange.0, through: yRange.1, by: 1)) : Self.ticks(yRange.0, yRange.1, integer: false)
        for tick in yTicks {
            let y = top + plotHeight - (tick - yRange.0) / max(yRange.1 - yRange.0, 1e-12) * plotHeight
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(y))\" stroke=\"#eee\"/>\n"
            let text = logarithmicY ? "10<tspan dy=\"-6\" font-size=\"9\">\(Int(tick))</tspan>" : Self.label(tick)
            svg += "<text x=\"\(f(left - 8))\" y=\"\(f(y + 4))\" font-size=\"12\" text-anchor=\"end\">\(text)</text>\n"
        }
        svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"#333\"/>\n"
        svg += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 18))\" font-size=\"14\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
        svg += "<text x=\"20\" y=\"\(f(top + plotHeight / 2))\" font-size=\"14\" text-anchor=\"middle\" transform=\"rotate(-90 20 \(f(top + plotHeight / 2)))\">\(Self.escape(yLabel))</text>\n"
        // Series.
        for (i, s) in series.enumerated() {
            let colour = Self.palette[i % Self.palette.count]
            let path = s.points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.8\"/>\n"
            for p in s.points {
                svg += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3.2\" fill=\"\(p.hollow ? "white" : colour)\" stroke=\"\(colour)\" stroke-width=\"1.5\"/>\n"
            }
            let ly = top + 10 + Double(i) * 22
            svg += "<line x1=\"\(f(width - right + 18))\" y1=\"\(f(ly))\" x2=\"\(f(width - right + 44))\" y2=\"\(f(ly))\" stroke=\"\(colour)\" stroke-width=\"2.5\"/>\n"
            svg += "<circle cx=\"\(f(width - right + 31))\" cy=\"\(f(ly))\" r=\"3.2\" fill=\"\(colour)\"/>\n"
            svg += "<text x=\"\(f(width - right + 52))\" y=\"\(f(ly + 4))\" font-size=\"13\">\(Self.escape(s.name))</text>\n"
        }
        if let hollowMeaning, all.contains(where: \.hollow) {
            let ly = top + 18 + Double(series.count) * 22
            svg += "<circle cx=\"\(f(width - right + 31))\" cy=\"\(f(ly))\" r=\"3.2\" fill=\"white\" stroke=\"#333\" stroke-width=\"1.5\"/>\n"
            svg += "<text x=\"\(f(width - right + 52))\" y=\"\(f(ly + 4))\" font-size=\"12\" fill=\"#333\">\(Self.escape(hollowMeaning))</text>\n"
        }
        return svg + "</svg>\n"
    }

    private func transform(_ y: Double) -> Double { logarithmicY ? log10(max(y, 1e-300)) : y }
    private func f(_ v: Double) -> String { String(format: "%.1f", v) }

    /// A range from `low` to `high` widened to round steps.
    static func niceRange(_ low: Double, _ high: Double) -> (Double, Double) {
        let step = niceStep((high - low) / 6)
        return ((low / step).rounded(.down) * step, max((high / step).rounded(.up) * step, low + step))
    }

    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0 && raw.isFinite else { return 1 }
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        for m in [1.0, 2, 2.5, 5, 10] where m * magnitude >= raw { return m * magnitude }
        return 10 * magnitude
    }

    static func ticks(_ low: Double, _ high: Double, integer: Bool) -> [Double] {
        var step = niceStep((high - low) / 6)
        if integer { step = max(1, step.rounded(.up)) }
        return Array(stride(from: (low / step).rounded(.up) * step, through: high + step * 1e-9, by: step))
    }

    static func label(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e9 ? String(Int(v)) : String(format: "%g", v)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}

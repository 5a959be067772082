import ArgumentParser
import Foundation
import Llama
import LowRank
import ModelFormats

/// `lowrank plot ranks|importance CHECKPOINT -o FILE.svg`: what a compression chose, per layer and
/// projection type, read from the checkpoint's compression.json.
struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plot a compressed checkpoint's ranks or importances per layer as an SVG.",
        subcommands: [Ranks.self, Importance.self])

    struct Ranks: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rank per layer for each projection type (as FLRC's Fig. 2); projections kept dense are drawn open at min(m, n).")

        @OptionGroup var options: PlotOptions

        func run() throws {
            let record = try Plot.record(options.checkpoint)
            let chart = SVGLineChart(
                title: "Rank per layer", subtitle: Plot.subtitle(record), xLabel: "layer", yLabel: "rank kept",
                series: Plot.series(record) { p in (Double(p.rank ?? min(p.outputs, p.inputs)), p.rank == nil) },
                hollowMeaning: "kept dense (full rank)")
            try Plot.write(chart, to: options.output)
        }
    }

    struct Importance: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "FLRC importance α = Σ(G⊙W)² per layer for each projection type (log scale); for an effective-rank checkpoint, D-Rank's effective rank.")

        @OptionGroup var options: PlotOptions

        func run() throws {
            let record = try Plot.record(options.checkpoint)
            let projections = record.report.projections
            let chart: SVGLineChart
            if projections.allSatisfy({ $0.importance != nil }) {
                let allocation = record.recipe.allocation
                let (title, axis) = switch allocation {
                case .fisherWeight: ("Weight-only importance Σ W² per layer", "Σ W² (log scale)")
                case .fisherGradient: ("Gradient-only importance Σ G² per layer", "Σ G² (log scale)")
                default: ("Fisher importance α = Σ (G⊙W)² per layer", "α (log scale)")
                }
                chart = SVGLineChart(title: title, subtitle: Plot.subtitle(record), xLabel: "layer", yLabel: axis, logarithmicY: true,
                                     series: Plot.series(record) { ($0.importance!, false) })
            } else if record.recipe.allocation == .effectiveRank && projections.allSatisfy({ $0.effectiveRank != nil }) {
                chart = SVGLineChart(title: "Effective rank exp(H(σ²/Σσ²)) of each whitened weight, per layer", subtitle: Plot.subtitle(record),
                                     xLabel: "layer", yLabel: "effective rank (log scale)", logarithmicY: true,
                                     series: Plot.series(record) { ($0.effectiveRank!, false) })
            } else {
                throw CLIError("\(options.checkpoint) has no importances to plot: compress with --allocation fisher (Fisher α) or effective-rank (effective ranks)")
            }
            try Plot.write(chart, to: options.output)
        }
    }

    /// What both plots read and write.
    struct PlotOptions: ParsableArguments {
        @Argument(help: "A checkpoint directory written by lowrank compress.")
        var checkpoint: String

        @Option(name: [.short, .customLong("output")], help: "SVG file to write.")
        var output: String
    }

    static func record(_ checkpoint: String) throws -> CompressionRecord {
        let found: (record: CompressionRecord, sha256: String)?
        do { found = try CompressionRecord.read(directory: checkpoint) } catch { throw CLIError("\(checkpoint)/\(CompressionRecord.fileName): \(error)") }
        guard let found else {
            throw CLIError("\(checkpoint) has no \(CompressionRecord.fileName): plot reads checkpoints written by lowrank compress")
        }
        return found.record
    }

    static func subtitle(_ r: CompressionRecord) -> String {
        String(format: "%@, --allocation %@, %.0f%% of projection parameters removed · %@", r.recipe.method.rawValue, r.recipe.allocation.rawValue,
               100 * r.removed_projection_fraction, (r.source_model as NSString).lastPathComponent)
    }

    /// One series per projection type, in the model's order, points by layer.
    static func series(_ r: CompressionRecord, value: (ProjectionReport) -> (Double, Bool)) -> [SVGLineChart.Series] {
        ProjectionKind.allCases.compactMap { kind in
            let entries = r.report.projections.filter { $0.projection == kind.shortName }.sorted { $0.layer < $1.layer }
            guard !entries.isEmpty else { return nil }
            return SVGLineChart.Series(name: kind.shortName, points: entries.map { p in
                let (y, hollow) = value(p)
                return (x: Double(p.layer), y: y, hollow: hollow)
            })
        }
    }

    static func write(_ chart: SVGLineChart, to path: String) throws {
        do { try AtomicWrite.write(Data(chart.render().utf8), to: path) } catch { throw CLIError("cannot write \(path): \(error)") }
        print("wrote \(path)")
    }
}

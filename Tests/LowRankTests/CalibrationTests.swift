import Testing
import LinearAlgebra
import Llama
import LowRank
import TestSupport

/// Records the raw inputs of one site, to check the accumulated statistics against.
final class InputRecorder: ForwardObserver {
    let layer: Int, site: InputSite
    var rows: [[Float]] = []
    init(layer: Int, site: InputSite) { self.layer = layer; self.site = site }
    func wants(_ point: ObservationPoint) -> Bool { point == .projectionInput(layer: layer, site: site) }
    func observe(_ point: ObservationPoint, values: UnsafePointer<Float>, rows: Int, columns: Int) {
        for r in 0..<rows { self.rows.append(Array(UnsafeBufferPointer(start: values + r * columns, count: columns))) }
    }
}

@Suite("Calibration")
struct CalibrationTests {
    @Test func seededWindowsAreReproducibleAndInRange() throws {
        let tokens = Array(0..<1000)
        let a = try CalibrationSet(tokens: tokens, count: 16, length: 50, seed: 3)
        let b = try CalibrationSet(tokens: tokens, count: 16, length: 50, seed: 3)
        let c = try CalibrationSet(tokens: tokens, count: 16, length: 50, seed: 4)
        #expect(a == b)
        #expect(a.starts != c.starts)
        for (start, window) in zip(a.starts, a.windows) {
            #expect(start >= 0 && start <= 1000 - 51)
            #expect(window == Array(start..<(start + 50)))
        }
    }

    @Test func explicitStartsOutsideTheCorpusAreRejected() {
        #expect(throws: CalibrationError.startOutOfRange(start: 990, length: 50, tokens: 1000)) {
            try CalibrationSet(tokens: Array(0..<1000), starts: [0, 990], length: 50)
        }
        #expect(throws: CalibrationError.corpusTooShort(tokens: 10, length: 50)) {
            try CalibrationSet(tokens: Array(0..<10), count: 1, length: 50, seed: 1)
        }
    }

    @Test func gramAndMeanAbsoluteMatchTheObservedInputs() throws {
        let tiny = TinyLlama(seed: 2)
        let model = LlamaModel(configuration: tiny.configuration, weights: tiny.weights)
        let statistics = ActivationStatistics(gram: true, absoluteMean: true)
        let recorder = InputRecorder(layer: 1, site: .mlpHidden)
        final class Both: ForwardObserver {
            let a: any ForwardObserver, b: any ForwardObserver
            init(_ a: any ForwardObserver, _ b: any ForwardObserver) { self.a = a; self.b = b }
            func wants(_ p: ObservationPoint) -> Bool { a.wants(p) || b.wants(p) }
            func observe(_ p: ObservationPoint, values: UnsafePointer<Float>, rows: Int, columns: Int) {
                if a.wants(p) { a.observe(p, values: values, rows: rows, columns: columns) }
                if b.wants(p) { b.observe(p, values: values, rows: rows, columns: columns) }
            }
        }
        let both = Both(statistics, recorder)
        for window in [[1, 2, 3, 4, 5], [9, 8, 7, 6, 5, 4]] { _ = model.score(window, observer: both) }
        let key = ActivationStatistics.Key(layer: 1, site: .mlpHidden)
        #expect(statistics.tokenCount[key] == 11)
        let g = try #require(statistics.symmetricGram(key))
        let x = recorder.rows
        #expect(x.count == 11)
        for i in stride(from: 0, to: 96, by: 7) {
            for j in stride(from: 0, to: 96, by: 5) {
                let expected = x.reduce(0.0) { $0 + Double($1[i]) * Double($1[j]) }
                #expect(abs(g[i, j] - expected) <= 1e-9 * max(1, abs(expected)))
            }
        }
        let mean = try #require(statistics.meanAbsolute(key))
        for c in 0..<96 { #expect(abs(mean[c] - x.reduce(0.0) { $0 + Double(abs($1[c])) } / 11) < 1e-12) }
        #expect(statistics.gram.count == 2 * InputSite.allCases.count)
    }
}

import Foundation
import Llama

/// Progress on stderr: `label  done/total  percent  elapsed  ETA`, redrawn in place at most every
/// half second on a terminal, and every 10% otherwise (so CI logs stay short).
final class ProgressReporter {
    let label: String
    let unit: String
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant
    private var lastDraw: ContinuousClock.Instant?
    private var lastDecile = -1
    private let interactive = isatty(STDERR_FILENO) != 0

    init(_ label: String, unit: String) {
        self.label = label
        self.unit = unit
        started = clock.now
    }

    func update(_ done: Int, _ total: Int) { update(done, total, detail: nil) }

    /// `detail` (e.g. the current layer) is shown after the count.
    func update(_ done: Int, _ total: Int, detail: String?) {
        let now = clock.now
        let decile = total > 0 ? done * 10 / total : 10
        let finished = done >= total
        if interactive {
            if !finished, let last = lastDraw, now - last < .milliseconds(500) { return }
        } else if !finished && decile == lastDecile {
            return
        }
        lastDraw = now
        lastDecile = decile
        let elapsed = (now - started).seconds
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : .nan
        let line = String(format: "%@  %d/%d %@%@  %5.1f%%  elapsed %@  ETA %@", label, done, total, unit, detail.map { "  " + $0 } ?? "",
                          100 * Double(done) / Double(max(total, 1)), Self.clockString(elapsed), finished ? "done" : Self.clockString(eta))
        let text = interactive ? "\r\u{1B}[K" + line + (finished ? "\n" : "") : line + "\n"
        FileHandle.standardError.write(Data(text.utf8))
    }

    static func clockString(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

import Foundation

/// This process's resident memory, from `/proc/self/status` (Linux; 0 where it is not available).
public enum ResidentMemory {
    /// Peak resident set size so far (VmHWM): what `/usr/bin/time` reports as maximum resident set.
    public static func peakBytes() -> Int { field("VmHWM:") }

    /// Resident set size now (VmRSS).
    public static func currentBytes() -> Int { field("VmRSS:") }

    static func field(_ name: String) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            // "VmHWM:\t 1138000 kB", but "VmHWM:\t19352596 kB" from 8 digits on: split on tabs and spaces.
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
        }
        return 0
    }
}

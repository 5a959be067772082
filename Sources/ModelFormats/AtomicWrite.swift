import Foundation

/// Writes files atomically: to a temporary file in the same directory, then a rename, so a reader
/// never sees a half-written file and a crash leaves the old file (or none) in place.
public enum AtomicWrite {
    public static func write(_ data: Data, to path: String) throws(ModelFormatError) {
        let url = URL(fileURLWithPath: path)
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw .cannotOpen(path: path, reason: "write failed: \(error.localizedDescription)")
        }
    }
}

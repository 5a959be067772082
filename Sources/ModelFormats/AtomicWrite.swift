import Foundation
#if canImport(Glibc)
import Glibc
#endif

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

    /// Streams pieces to `<dir>/.<name>.tmp-<random>` through `sink`, flushes them to disk, then
    /// renames the file over `path`. On any failure the temporary file is removed and `path` is
    /// untouched.
    public static func stream(to path: String,
                              _ produce: ((UnsafeRawBufferPointer) throws(ModelFormatError) -> Void) throws(ModelFormatError) -> Void)
        throws(ModelFormatError) {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(UUID().uuidString)").path
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var closed = false
        defer {
            if !closed { close(fd) }
        }
        do throws(ModelFormatError) {
            try produce { (bytes: UnsafeRawBufferPointer) throws(ModelFormatError) in
                var done = 0
                while done < bytes.count {
                    let n = Glibc.write(fd, bytes.baseAddress! + done, min(bytes.count - done, 1 << 30))
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw .cannotOpen(path: path, reason: "write failed: \(String(cString: strerror(errno)))")
                    }
                    done += n
                }
            }
            guard fsync(fd) == 0 else { throw .cannotOpen(path: path, reason: "fsync failed: \(String(cString: strerror(errno)))") }
            closed = true
            guard close(fd) == 0 else { throw .cannotOpen(path: path, reason: "close failed: \(String(cString: strerror(errno)))") }
            guard rename(temporary, path) == 0 else {
                throw .cannotOpen(path: path, reason: "rename from \(temporary) failed: \(String(cString: strerror(errno)))")
            }
        } catch {
            unlink(temporary)
            throw error
        }
    }
}

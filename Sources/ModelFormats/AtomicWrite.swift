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

    /// Puts the directory `staged` at `target` so that a reader (or a process killed at any moment)
    /// sees either the previous `target` whole or the new one whole, never a mix or nothing: a new
    /// target is one rename; an existing one is swapped in one step with Linux's
    /// `renameat2(RENAME_EXCHANGE)`, after which the old contents (now at `staged`) are removed.
    /// Where the exchange is unavailable (not Linux, or a file system without it) it falls back to
    /// two renames, leaving a moment with no `target` (the old one sits at `.NAME.old-…` then).
    public static func replaceDirectory(_ target: String, with staged: String) throws(ModelFormatError) {
        let fm = FileManager.default
        if !fm.fileExists(atPath: target) {
            guard rename(staged, target) == 0 else {
                throw .cannotOpen(path: target, reason: "rename from \(staged) failed: \(String(cString: strerror(errno)))")
            }
            return
        }
        if let exchange = renameExchange, exchange(AT_FDCWD, staged, AT_FDCWD, target, 2 /* RENAME_EXCHANGE */) == 0 {
            try? fm.removeItem(atPath: staged)  // the previous checkpoint
            return
        }
        let url = URL(fileURLWithPath: target)
        let old = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).old-\(UUID().uuidString)").path
        guard rename(target, old) == 0 else {
            throw .cannotOpen(path: target, reason: "cannot move the previous \(target) aside: \(String(cString: strerror(errno)))")
        }
        guard rename(staged, target) == 0 else {
            let reason = String(cString: strerror(errno))
            _ = rename(old, target)
            throw .cannotOpen(path: target, reason: "rename from \(staged) failed: \(reason)")
        }
        try? fm.removeItem(atPath: old)
    }

    /// glibc's `renameat2` (not in Swift's Glibc module: it needs _GNU_SOURCE), looked up at run time.
    private typealias Renameat2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
    private static let renameExchange: Renameat2? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "renameat2") else { return nil }
        return unsafeBitCast(symbol, to: Renameat2.self)
    }()
}

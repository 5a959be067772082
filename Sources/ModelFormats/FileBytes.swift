import Foundation

/// Whole small files (JSON headers, configs, data lines) read through a memory map. Why not
/// `Data(contentsOf:)`: on Linux, Foundation's reader leaks a 4 KiB buffer for an empty file (found
/// by fuzzing `tokenizer.json` and `config.json` with LeakSanitizer), and an empty file is exactly
/// the kind of input a parser must reject cleanly.
public enum FileBytes {
    public static func read(_ path: String) throws(ModelFormatError) -> Data {
        let file = try MappedFile(path: path)
        return file.size == 0 ? Data() : Data(file.bytes)
    }
}

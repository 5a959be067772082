import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

/// Process-level OpenBLAS configuration: which kernels it uses and how many threads.
///
/// Debian's OpenBLAS 0.3.21 does not recognise Zen 5 and falls back to its AVX2 "Haswell" kernels,
/// about half the sgemm speed of its AVX-512 "SkylakeX" kernels on the same CPU
/// (`../shared/research/swift_toolchain.md` §1.5, §2.1). OpenBLAS picks its kernels in a load-time
/// constructor, so `OPENBLAS_CORETYPE` only takes effect if it is in the environment when the
/// process starts: hence a one-time re-exec of the binary with the variable set.
public enum BLASRuntime {
    /// The environment variable that marks the re-executed process, so it happens at most once.
    public static let reexecMarker = "LOWRANK_BLAS_REEXEC"

    /// For testing the re-execution on a machine whose OpenBLAS does not fall back: decide as if
    /// OpenBLAS had picked the kernel family this variable names. Only the decision of the first
    /// process reads it; the re-executed process reports the kernels OpenBLAS really loaded, so
    /// what is checked end to end (`execv`, the variable reaching OpenBLAS's load-time constructor,
    /// the report) is real.
    public static let assumeDetectedVariable = "LOWRANK_BLAS_ASSUME_DETECTED"

    /// The kernel family OpenBLAS chose ("Haswell", "SkylakeX", ...).
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    public static func setThreadCount(_ count: Int) {
        precondition(count >= 1, "BLAS thread count must be at least 1")
        openblas_set_num_threads(Int32(count))
        threadCountChosen = true
    }

    nonisolated(unsafe) private static var threadCountChosen = false

    /// One BLAS thread per call unless the thread count was chosen already (`setThreadCount`,
    /// `prepareProcess`) or given in the environment. `Parallel` calls this when it creates its
    /// worker pool: every worker calls sgemm on its own share, and OpenBLAS's own threads on top
    /// oversubscribe the cores. A process that never ran `prepareProcess` (the test runner) kept
    /// OpenBLAS's default of one thread per core: the SmolLM2 forward tests took 39 s with it
    /// against 18 s with one thread, a third of it spent spinning in `sched_yield`.
    static func useOneThreadUnlessChosen() {
        guard !threadCountChosen else { return }
        threadCountChosen = true
        let environment = initialEnvironment()
        if environment["OPENBLAS_NUM_THREADS"] == nil && environment["OMP_NUM_THREADS"] == nil { setThreadCount(1) }
    }

    /// What `prepareProcess` decided (`BLASKernelChoice.decide`).
    public nonisolated(unsafe) private(set) static var decision: BLASKernelChoice.Decision?

    /// One line for reports: the kernel family in use, how it was chosen, and the threads per call.
    public static var summary: String {
        let how: String = switch decision {
        case .keepUserSetting?: "set by OPENBLAS_CORETYPE"
        case .keepAVX512?: "OpenBLAS's own choice"
        case .keepNoAVX512?: "OpenBLAS's own choice; the CPU has no AVX-512"
        case .reexecute?, .reexecuted?: "chosen by lowrank for this CPU's AVX-512"
        case .reexecuteFailed?: "OpenBLAS ignored lowrank's choice of AVX-512 kernels"
        case nil: "OpenBLAS's own choice"
        }
        return "OpenBLAS \(coreName) kernels (\(how)), \(threadCount) thread(s) per call"
    }

    /// Call first thing in `main`. Applies `BLASKernelChoice.decide`: when OpenBLAS picked kernels
    /// without AVX-512 on a CPU that has it, and the user did not set `OPENBLAS_CORETYPE`,
    /// re-executes the binary with the best AVX-512 kernels for the CPU's flags (does not return on
    /// success). Then sets one BLAS thread unless `OPENBLAS_NUM_THREADS` was given: on these 2-core
    /// machines one thread was never slower (toolchain notes §2.1).
    @discardableResult
    public static func prepareProcess() -> BLASKernelChoice.Decision {
        let initial = initialEnvironment()
        let reexecuted = initial[reexecMarker] != nil
        let detected = reexecuted ? coreName : (initial[assumeDetectedVariable].flatMap { $0.isEmpty ? nil : $0 } ?? coreName)
        var choice = BLASKernelChoice.decide(current: detected, flags: CPUFeatures.current.flags, userSetting: initial["OPENBLAS_CORETYPE"],
                                             alreadyReexecuted: reexecuted)
        if case .reexecute(let kernel) = choice {
            setenv("OPENBLAS_CORETYPE", kernel, 1)
            setenv(reexecMarker, "1", 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            choice = .reexecuteFailed(coreName)  // execv only returns on failure
        }
        decision = choice
        if initial["OPENBLAS_NUM_THREADS"] == nil && initial["OMP_NUM_THREADS"] == nil {
            setThreadCount(1)
        }
        return choice
    }

    /// The environment the process was started with. OpenBLAS itself exports
    /// `OPENBLAS_CORETYPE=<detected>` at load time, so `getenv` cannot tell whether the user set it;
    /// `/proc/self/environ` still holds the environment as it was at exec.
    static func initialEnvironment() -> [String: String] {
        guard let bytes = try? readAll(path: "/proc/self/environ") else { return [:] }
        var result: [String: String] = [:]
        for entry in bytes.split(separator: 0) {
            guard let equals = entry.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let key = String(decoding: entry[entry.startIndex..<equals], as: UTF8.self)
            let value = String(decoding: entry[(equals + 1)...], as: UTF8.self)
            result[key] = value
        }
        return result
    }
}

/// CPU features read from `/proc/cpuinfo` (Linux).
public struct CPUFeatures: Sendable {
    public let flags: Set<String>

    public var hasAVX512F: Bool { flags.contains("avx512f") }
    public var hasF16C: Bool { flags.contains("f16c") }
    public var hasAVX512BF16: Bool { flags.contains("avx512_bf16") }

    public static let current: CPUFeatures = {
        guard let bytes = try? readAll(path: "/proc/cpuinfo") else { return CPUFeatures(flags: []) }
        let text = String(decoding: bytes, as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            if let colon = line.firstIndex(of: ":") {
                return CPUFeatures(flags: Set(line[line.index(after: colon)...].split(separator: " ").map(String.init)))
            }
        }
        return CPUFeatures(flags: [])
    }()
}

/// Reads a whole (possibly size-less, like /proc) file with POSIX calls.
func readAll(path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw POSIXErrorCode(rawValue: errno).map { POSIXError($0) } ?? POSIXError(.EIO) }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
        if n <= 0 { break }
        result.append(contentsOf: chunk[0..<n])
    }
    return result
}

struct POSIXError: Error { let code: POSIXErrorCode; init(_ code: POSIXErrorCode) { self.code = code } }

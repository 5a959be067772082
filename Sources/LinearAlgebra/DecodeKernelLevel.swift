import CKernels

/// The tiers of decode kernels (`CKernels` dispatches every product on the tier in use) and the
/// user's choice of one: the CPU decides, `LOWRANK_DECODE_KERNELS` or a test may ask for a lower
/// tier (A/B measurements, and the tests that compare each tier with its reference twin).
extension DecodeKernels {
    /// A tier of kernels, by the instructions it needs.
    public enum Level: Int32, CaseIterable, Comparable, Sendable, CustomStringConvertible {
        /// Plain C loops: any CPU.
        case portable = 0
        /// AVX2 with FMA and F16C (Intel since Haswell, AMD since Zen 1).
        case avx2 = 1
        /// AVX-512 F, BW and VL with FMA and F16C (Intel Skylake-SP and later server cores, AMD Zen 4 and later).
        case avx512 = 2

        public var description: String {
            switch self {
            case .portable: "portable"
            case .avx2: "avx2"
            case .avx512: "avx512"
            }
        }

        public init?(name: String) {
            guard let level = Self.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
            self = level
        }

        public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    }

    /// The tier this CPU supports.
    public static var cpuLevel: Level { Level(rawValue: lowrank_kernels_cpu_level()) ?? .portable }

    /// The tier in use: `cpuLevel`, or a lower one set by `force`.
    public static var level: Level { Level(rawValue: lowrank_kernels_level()) ?? .portable }

    /// Every tier this CPU can run (the tests compare each with its reference twin).
    public static var supportedLevels: [Level] { Level.allCases.filter { $0 <= cpuLevel } }

    /// Runs `level` instead of the CPU's tier (tests, and `LOWRANK_DECODE_KERNELS` for A/B
    /// measurements); nil restores the choice by CPU. A tier above the CPU's is refused.
    public static func force(_ level: Level?) throws(ChoiceError) {
        if let level, level > cpuLevel {
            throw ChoiceError(description: "this CPU cannot run the \(level) decode kernels (it runs \(supportedNames))")
        }
        lowrank_kernels_force_level(level?.rawValue ?? -1)
    }

    /// The environment variable that forces a tier for a whole run.
    public static let environmentVariable = "LOWRANK_DECODE_KERNELS"

    /// Applies `LOWRANK_DECODE_KERNELS` (its value, nil when unset): a tier name, at most the CPU's.
    public static func applyEnvironment(_ value: String?) throws(ChoiceError) {
        guard let value, !value.isEmpty else { return }
        guard let level = Level(name: value) else {
            throw ChoiceError(description: "\(environmentVariable)=\(value) is not a tier of decode kernels; use one of \(supportedNames), or unset it")
        }
        do { try force(level) } catch {
            throw ChoiceError(description: "\(environmentVariable)=\(value): \(error.description); unset it or choose a lower tier")
        }
    }

    /// A bad choice of tier, with what to do instead.
    public struct ChoiceError: Error, CustomStringConvertible {
        public var description: String
    }

    private static var supportedNames: String { supportedLevels.map(\.description).joined(separator: ", ") }

    /// One line for reports: the tier in use, and whether the user forced it.
    public static var summary: String {
        level == cpuLevel ? "\(level)" : "\(level) (forced by \(environmentVariable); the CPU runs \(cpuLevel))"
    }
}

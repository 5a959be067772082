/// Which OpenBLAS kernels to run on this CPU: a pure decision table, tested on its own.
///
/// OpenBLAS picks its kernels once, at load time, from the CPU model it recognises. Debian's 0.3.21
/// does not know recent CPUs and falls back to kernels without AVX-512: Haswell (AVX2) on Zen 5,
/// Prescott (SSE3) on an Intel Xeon of family 6, model 207. One-thread sgemm at
/// `[512 × 576] · [1536 × 576]ᵀ` measured there in one run: Prescott 31 GFLOP/s, SkylakeX 62,
/// Haswell 79, Cooperlake 86 (issue 11); on this project's AMD EPYC see docs/BENCHMARKS.md.
/// Cooperlake's single-precision kernels are SkylakeX's compiled for a CPU with AVX-512 BF16, and
/// measured fastest wherever that flag exists, so it is the choice there; SkylakeX otherwise.
public enum BLASKernelChoice {
    /// What to do about the kernels OpenBLAS picked.
    public enum Decision: Equatable, Sendable {
        /// The user set `OPENBLAS_CORETYPE`: it always wins.
        case keepUserSetting(String)
        /// OpenBLAS already runs AVX-512 kernels.
        case keepAVX512(String)
        /// The CPU lacks what the AVX-512 kernels need; OpenBLAS's choice stands.
        case keepNoAVX512(String)
        /// Re-execute once with `OPENBLAS_CORETYPE` set to this kernel family.
        case reexecute(String)
        /// This is the re-executed process, running the AVX-512 kernels lowrank chose.
        case reexecuted(String)
        /// A re-executed process still runs these (the variable was ignored); do not loop.
        case reexecuteFailed(String)
    }

    /// OpenBLAS 0.3.21's kernel families that use AVX-512.
    public static let avx512Kernels: Set<String> = ["SkylakeX", "Cooperlake", "SapphireRapids"]

    /// The CPU flags OpenBLAS's SkylakeX kernels need (its `support_avx512` check and kernel code).
    public static let requiredFlags: Set<String> = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

    /// - Parameters:
    ///   - current: the kernel family OpenBLAS chose (`openblas_get_corename`).
    ///   - flags: the CPU's flags (`/proc/cpuinfo`).
    ///   - userSetting: `OPENBLAS_CORETYPE` as the process was started, if set.
    ///   - alreadyReexecuted: this process is the re-executed one.
    ///   A re-executed process sees the `OPENBLAS_CORETYPE` lowrank set, so there it is not the user's.
    public static func decide(current: String, flags: Set<String>, userSetting: String?, alreadyReexecuted: Bool) -> Decision {
        let isAVX512 = avx512Kernels.contains { $0.lowercased() == current.lowercased() }
        if alreadyReexecuted { return isAVX512 ? .reexecuted(current) : .reexecuteFailed(current) }
        if let userSetting { return .keepUserSetting(userSetting) }
        if isAVX512 { return .keepAVX512(current) }
        guard requiredFlags.isSubset(of: flags) else { return .keepNoAVX512(current) }
        return .reexecute(flags.contains("avx512_bf16") ? "Cooperlake" : "SkylakeX")
    }
}

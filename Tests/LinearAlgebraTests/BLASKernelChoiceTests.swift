import Testing
import LinearAlgebra

/// The kernel decision table: kernel name × CPU flags × user setting → action.
@Suite("OpenBLAS kernel choice")
struct BLASKernelChoiceTests {
    static let avx512: Set<String> = ["sse3", "avx2", "fma", "f16c", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]
    static let avx512BF16 = avx512.union(["avx512_bf16", "avx512_fp16"])
    static let avx2: Set<String> = ["sse3", "avx2", "fma", "f16c"]

    @Test(arguments: [
        // kernel OpenBLAS chose, CPU flags, OPENBLAS_CORETYPE, re-executed already → decision
        ("Prescott", avx512BF16, nil, false, BLASKernelChoice.Decision.reexecute("Cooperlake")),  // the Intel Xeon of issue 11
        ("Haswell", avx512BF16, nil, false, .reexecute("Cooperlake")),  // Zen 5 on 0.3.21
        ("Zen", avx512BF16, nil, false, .reexecute("Cooperlake")),
        ("Sandybridge", avx512, nil, false, .reexecute("SkylakeX")),  // AVX-512 without BF16
        ("Nehalem", avx512, nil, false, .reexecute("SkylakeX")),
        ("Cooperlake", avx512BF16, nil, false, .keepAVX512("Cooperlake")),  // this project's AMD EPYC
        ("SkylakeX", avx512BF16, nil, false, .keepAVX512("SkylakeX")),
        ("Haswell", avx2, nil, false, .keepNoAVX512("Haswell")),
        ("Prescott", avx512.subtracting(["avx512vl"]), nil, false, .keepNoAVX512("Prescott")),  // the kernels need VL
        ("Prescott", avx512BF16, "Prescott", false, .keepUserSetting("Prescott")),  // the user always wins
        ("Cooperlake", avx512BF16, "Cooperlake", true, .reexecuted("Cooperlake")),  // the variable is lowrank's there
        ("Prescott", avx512BF16, "Cooperlake", true, .reexecuteFailed("Prescott")),  // never loop
    ] as [(String, Set<String>, String?, Bool, BLASKernelChoice.Decision)])
    func theDecisionTableGivesTheExpectedAction(row: (String, Set<String>, String?, Bool, BLASKernelChoice.Decision)) {
        let (kernel, flags, user, reexecuted, expected) = row
        #expect(BLASKernelChoice.decide(current: kernel, flags: flags, userSetting: user, alreadyReexecuted: reexecuted) == expected)
    }
}

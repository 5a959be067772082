#!/usr/bin/env bash
# Single-thread bandwidth of the decode kernels (benchmarks/kernel_bandwidth.c), compiled against
# Sources/CKernels as the package compiles them; once on cache-line aligned buffers (as the engine
# allocates a runtime model's weights and the KV cache) and once on buffers 48 bytes into a line (as
# large Swift arrays, where the loaders put Float32 weights).
# Usage: benchmarks/kernel_bandwidth.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kernels="$here/../Sources/CKernels"
out="$(mktemp -d)"
clang -O2 -I"$kernels/include" "$here/kernel_bandwidth.c" "$kernels/kernels.c" -o "$out/kernel_bandwidth"
lscpu | grep "Model name" || true
"$out/kernel_bandwidth"
"$out/kernel_bandwidth" misaligned
rm -rf "$out"

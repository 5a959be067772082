import LinearAlgebra

// Before anything uses BLAS: pick OpenBLAS's AVX-512 kernels (may re-exec) and one BLAS thread.
BLASRuntime.prepareProcess()
LowRank.main()

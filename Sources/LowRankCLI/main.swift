import ArgumentParser
import Foundation
import LinearAlgebra

// Before anything uses BLAS: pick OpenBLAS's AVX-512 kernels (may re-exec) and one BLAS thread.
BLASRuntime.prepareProcess()
do {
    try DecodeKernels.applyEnvironment(getenv(DecodeKernels.environmentVariable).map { String(cString: $0) })
} catch {
    LowRank.exit(withError: error)
}
await runLowRank()

/// What AsyncParsableCommand.main() does, spelled out in an async function: from top-level code the
/// compiler picks the synchronous overloads, which would print `serve`'s help instead of running it.
func runLowRank() async {
    do {
        var command = try LowRank.parseAsRoot()
        if var asynchronous = command as? any AsyncParsableCommand {
            try await asynchronous.run()
        } else {
            try command.run()
        }
    } catch {
        LowRank.exit(withError: error)
    }
}

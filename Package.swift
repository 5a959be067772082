// swift-tools-version: 6.0
import PackageDescription

// Target graph (one job each; see docs/ARCHITECTURE.md):
//   COpenBLAS      system library: OpenBLAS + LAPACKE from Debian's libopenblas-dev, liblapacke-dev
//   LinearAlgebra  Matrix, the only caller of BLAS/LAPACK, BLAS runtime set-up
//   ModelFormats   bytes only: GGUF, safetensors, dequantisation, memory maps
//   Tokenization   byte-level BPE, pre-tokenizers, chat template
//   Llama          configuration, weights addressed by type, loading from GGUF or HF directories
//   LowRankCLI     the `lowrank` executable; the only target that prints
let package = Package(
    name: "lowrank",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "lowrank", targets: ["LowRankCLI"]),
        .library(name: "Llama", targets: ["Llama"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        .target(name: "LinearAlgebra", dependencies: ["COpenBLAS"]),
        .target(name: "ModelFormats"),
        .target(name: "Tokenization", dependencies: ["ModelFormats"]),
        .target(name: "Llama", dependencies: ["LinearAlgebra", "ModelFormats", "Tokenization"]),
        .executableTarget(
            name: "LowRankCLI",
            dependencies: [
                "Llama", "LinearAlgebra", "ModelFormats", "Tokenization",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "TestSupport",
            dependencies: ["Llama", "LinearAlgebra", "ModelFormats", "Tokenization"],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "LinearAlgebraTests", dependencies: ["LinearAlgebra", "TestSupport"]),
        .testTarget(name: "ModelFormatsTests", dependencies: ["ModelFormats", "TestSupport"]),
        .testTarget(name: "TokenizationTests", dependencies: ["Tokenization", "ModelFormats", "TestSupport"]),
        .testTarget(name: "LlamaTests", dependencies: ["Llama", "TestSupport"]),
        // Runs the built `lowrank` binary; depends on the executable so it is built first.
        .testTarget(name: "LowRankCLITests", dependencies: ["LowRankCLI", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)

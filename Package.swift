// swift-tools-version: 6.0
import PackageDescription

// Target graph (one job each; see docs/ARCHITECTURE.md):
//   COpenBLAS      system library: OpenBLAS + LAPACKE from Debian's libopenblas-dev, liblapacke-dev
//   CKernels       C decode kernels (gemv on f32/f16/bf16 weights), AVX-512 with a portable fallback
//   LinearAlgebra  Matrix, the only caller of BLAS/LAPACK and CKernels, BLAS runtime set-up
//   ModelFormats   bytes only: GGUF, safetensors, dequantisation, memory maps
//   Tokenization   byte-level BPE, pre-tokenizers, chat template
//   Llama          configuration, weights addressed by type, loading, the forward pass and generation
//   Evaluation     perplexity (and later zero-shot, ROUGE) over a small LanguageModel protocol
//   Gradients      the backward pass: op functions paired forward/backward with reference twins
//   LowRank        compression: scalings (SVD, ASVD, SVD-LLM whitening), factorisation, ranks
//   Serving        `lowrank serve`: continuous batching and OpenAI's HTTP API on Hummingbird
//   LowRankCLI     the `lowrank` executable; the only target that prints
//   LowRankFuzz    fuzz targets for every parser (libFuzzer with scripts/fuzz.sh; corpus replay otherwise)
let package = Package(
    name: "lowrank",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "lowrank", targets: ["LowRankCLI"]),
        .executable(name: "lowrank-fuzz", targets: ["LowRankFuzz"]),
        .library(name: "Llama", targets: ["Llama"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        // Decode kernels (AVX-512 intrinsics with run-time dispatch and portable fallbacks); only
        // LinearAlgebra calls them.
        .target(name: "CKernels"),
        .target(name: "LinearAlgebra", dependencies: ["COpenBLAS", "CKernels"]),
        .target(name: "ModelFormats"),
        .target(name: "Tokenization", dependencies: ["ModelFormats"]),
        .target(name: "Llama", dependencies: ["LinearAlgebra", "ModelFormats", "Tokenization"]),
        .target(name: "Evaluation", dependencies: ["Llama", "Tokenization", "ModelFormats"]),
        .target(name: "Gradients", dependencies: ["Llama", "LinearAlgebra"]),
        .target(name: "LowRank", dependencies: ["Llama", "LinearAlgebra", "ModelFormats", "Gradients"]),
        .target(
            name: "Serving",
            dependencies: [
                "Llama", "LinearAlgebra", "Tokenization",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "LowRankCLI",
            dependencies: [
                "Llama", "LinearAlgebra", "ModelFormats", "Tokenization", "Evaluation", "LowRank", "Serving",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Fuzz targets for every parser (scripts/fuzz.sh builds it with libFuzzer and ASan; the plain
        // build replays corpora: `lowrank-fuzz TARGET FILE...`).
        .executableTarget(name: "LowRankFuzz", dependencies: ["ModelFormats", "Tokenization", "Llama", "Evaluation", "LowRank"]),
        .target(
            name: "TestSupport",
            dependencies: ["Llama", "LinearAlgebra", "ModelFormats", "Tokenization"],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "LinearAlgebraTests", dependencies: ["LinearAlgebra", "TestSupport"]),
        .testTarget(name: "ModelFormatsTests", dependencies: ["ModelFormats", "TestSupport"]),
        .testTarget(name: "TokenizationTests", dependencies: ["Tokenization", "ModelFormats", "TestSupport"]),
        .testTarget(name: "LlamaTests", dependencies: ["Llama", "TestSupport"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Llama", "TestSupport"]),
        .testTarget(name: "GradientsTests", dependencies: ["Gradients", "Llama", "LinearAlgebra", "Evaluation", "TestSupport"]),
        .testTarget(name: "LowRankTests", dependencies: ["LowRank", "Gradients", "LinearAlgebra", "Llama", "Evaluation", "ModelFormats", "TestSupport"]),
        // Runs the built `lowrank` binary; depends on the executable so it is built first.
        .testTarget(name: "LowRankCLITests", dependencies: ["LowRankCLI", "TestSupport"]),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "Llama", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)

import ArgumentParser

struct LowRank: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lowrank",
        abstract: "Compress Llama-family language models by low-rank factorisation, and measure the result.",
        discussion: """
            MODEL is a .gguf file or a Hugging Face directory (config.json, model.safetensors, tokenizer.json).
            Environment: OPENBLAS_CORETYPE and OPENBLAS_NUM_THREADS are honoured when set; otherwise lowrank \
            selects OpenBLAS's AVX-512 kernels on CPUs that have them and uses one BLAS thread. \
            LOWRANK_DECODE_KERNELS=portable|avx2|avx512 runs a lower tier of decode kernels than the CPU's (A/B measurements).
            """,
        subcommands: [Info.self, Tokenize.self, Generate.self, Perplexity.self, Compress.self, Heal.self, Bench.self, Logits.self, Eval.self, Summarize.self, Schedule.self, Synthesize.self, Plot.self, Serve.self]
    )
}

/// Options every command that reads a model shares.
struct ModelOptions: ParsableArguments {
    @Argument(help: "A .gguf file or a Hugging Face model directory.")
    var model: String

    @Option(name: .customLong("pretokenizer"),
            help: "Override the model's pre-tokenizer: \(PreTokenizerChoice.allValueStrings.joined(separator: ", ")).")
    var preTokenizer: PreTokenizerChoice?
}

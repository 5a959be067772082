import ArgumentParser
import Evaluation
import Foundation
import LinearAlgebra
import Llama
import LowRank
import ModelFormats

struct Heal: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Heal a compressed checkpoint: train its low-rank factors toward the dense model by distillation, and write a new checkpoint.",
        discussion: """
            Every factor of every compressed projection is trained with Adam to lower the KL divergence of the \
            checkpoint's next-token distributions from the dense teacher's (by default the model compression.json names, \
            checked by its sha256), on calibration windows: --steps steps of --windows-per-step windows of --length tokens. \
            The forms, ranks and parameter count do not change; norms, embeddings, the head and projections kept dense stay frozen. \
            The target is the teacher's distribution, not the corpus's next token, so healing pulls the checkpoint back toward \
            the model it approximates and does not learn the corpus. --validation-windows held-out windows (never trained on) \
            are scored before and after. The output's compression.json gains a healing section (recipe, windows, \
            divergences), which every later measurement records. SVD-LLM's full recipe recovers accuracy the same way, \
            with LoRA on one factor at a time (algorithms.md §1.6). Time: one step of 4 windows of 512 takes about 30 s on \
            SmolLM2-135M with 2 cores.
            """)

    @OptionGroup var model: ModelOptions

    @Option(help: "The dense model the checkpoint was compressed from (default: compression.json's source_model; its sha256 must match).")
    var teacher: String?

    @Option(name: [.short, .customLong("output")], help: "Checkpoint directory to write (replaced atomically).")
    var output: String

    @Option(help: "Optimiser steps.")
    var steps: Int = 100

    @Option(help: "Calibration windows per step (their gradients are averaged).")
    var windowsPerStep: Int = 4

    @Option(help: "Tokens per window.")
    var length: Int = 512

    @Option(help: "Adam's learning rate.")
    var learningRate: Double = 1e-5

    @Option(help: "Held-out windows scored before and after (training windows never overlap them).")
    var validationWindows: Int = 4

    @Option(help: "Calibration corpus: c4 (data/c4/train_sample.jsonl) or a path (.txt or .jsonl with \"text\").")
    var calibration: String = "c4"

    @Option(help: "Windows start at this token of the corpus or later (keeps a prefix that an evaluation reads out of training, e.g. 8704 for perplexity --window 512 --limit 16 on the same file).")
    var firstToken: Int = 0

    @Option(help: "Seed for the window offsets.")
    var seed: UInt64 = 3

    @Option(help: "Folder holding c4/ (default: $LOWRANK_DATA, ./data, or the repository's data/).")
    var dataDirectory: String?

    @Flag(help: "Print the healing record as JSON.")
    var json = false

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be ≥ 1") }
        guard windowsPerStep >= 1 else { throw ValidationError("--windows-per-step must be ≥ 1") }
        guard length >= 2 else { throw ValidationError("--length must be ≥ 2") }
        guard validationWindows >= 1 else { throw ValidationError("--validation-windows must be ≥ 1 (the before/after check)") }
        guard learningRate > 0 && learningRate.isFinite else { throw ValidationError("--learning-rate must be a positive number (e.g. 1e-5)") }
        guard firstToken >= 0 else { throw ValidationError("--first-token must be ≥ 0") }
    }

    func run() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let loaded = try loadModel(model)
        guard !loaded.weights.isDense else {
            throw CLIError("\(loaded.source.path) has no low-rank factors: heal a checkpoint written by lowrank compress")
        }
        let saved: (record: CompressionRecord, sha256: String)?
        do { saved = try CompressionRecord.read(directory: loaded.source.path) } catch { throw CLIError(error.description) }
        guard var record = saved?.record else {
            throw CLIError("\(loaded.source.path) has no \(CompressionRecord.fileName): heal needs the checkpoint's recipe and source model")
        }
        guard record.healing == nil else {
            throw CLIError("\(loaded.source.path) is already healed (its \(CompressionRecord.fileName) has a healing section); heal the checkpoint lowrank compress wrote")
        }
        let teacherPath = teacher ?? record.source_model
        let teacherModel: LoadedModel
        do { teacherModel = try ModelLoader.load(teacherPath, options: LoadOptions(preTokenizer: model.preTokenizer?.value)) } catch {
            throw CLIError("--teacher: \(error)" + (teacher == nil ? " (the source_model of \(CompressionRecord.fileName); pass --teacher PATH)" : ""))
        }
        guard teacherModel.weights.isDense else { throw CLIError("--teacher: \(teacherPath) is compressed; pass the dense model") }
        let teacherSHA256 = try SHA256.hexDigest(ofFile: modelDigestPath(teacherModel))
        guard teacherSHA256 == record.source_sha256 else {
            throw CLIError("--teacher: \(teacherPath) has sha256 \(teacherSHA256.prefix(12))…, but \(loaded.source.path) was compressed from sha256 \(record.source_sha256.prefix(12))…; pass the model it was compressed from")
        }
        let corpus = Corpus(argument: calibration)
        let directory = dataDirectory ?? defaultDataDirectory()
        let text: String
        do { text = try corpus.text(dataDirectory: directory) } catch let error as CorpusError { throw CLIError(error.description) }
        let calibrationFile = corpus.path(dataDirectory: directory)
        let tokens = loaded.tokenizer.encode(text)
        let (training, validation) = try Self.windows(corpusTokens: tokens.count, firstToken: firstToken, length: length,
                                                      training: steps * windowsPerStep, validation: validationWindows, seed: seed)
        func window(_ start: Int) -> [Int] { Array(tokens[start..<(start + length)]) }
        let options = HealingOptions(learningRate: Float(learningRate))
        let healer: FactorHealer
        do {
            healer = try FactorHealer(configuration: loaded.configuration, student: loaded.weights, teacher: teacherModel.weights, options: options)
        } catch { throw CLIError(error.description) }
        let before = validation.map { healer.divergence(window($0)) }.reduce(0, +) / Double(validation.count)
        FileHandle.standardError.write(Data(String(format: "healing %@ (%@ factor values): held-out divergence %.5f nats/token before\n",
                                                   loaded.source.path, Terminal.grouped(healer.trainedParameterCount), before).utf8))
        let progress = ProgressReporter("healing", unit: "steps")
        var curve: [Double] = []
        for s in 0..<steps {
            var total = 0.0
            for start in training[(s * windowsPerStep)..<((s + 1) * windowsPerStep)] { total += healer.accumulate(window(start)) }
            do { try healer.step() } catch { throw CLIError(error.description) }
            curve.append(total / Double(windowsPerStep))
            progress.update(s + 1, steps, detail: String(format: "divergence %.5f", curve.last!))
        }
        let after = validation.map { healer.divergence(window($0)) }.reduce(0, +) / Double(validation.count)
        var weights = loaded.weights
        weights.compressedGroups = healer.healedGroups()
        let healed = LlamaModel(configuration: loaded.configuration, weights: weights)
        let recipe = HealingRecord.Recipe(
            objective: "distillation-kl", teacher_model: teacherModel.source.path, teacher_sha256: teacherSHA256,
            student_checkpoint: loaded.source.path, student_compression_sha256: saved?.sha256, calibration_file: calibrationFile,
            calibration_sha256: try SHA256.hexDigest(ofFile: calibrationFile), window_length: length, windows_per_step: windowsPerStep,
            steps: steps, training_starts: training, validation_starts: validation, seed: seed, options: options)
        let healing = HealingRecord(recipe: recipe, trained_parameters: healer.trainedParameterCount, validation_divergence_before: before,
                                    validation_divergence_after: after, training_divergence: curve, seconds: (clock.now - started).seconds)
        record.healing = healing
        try Checkpoint.write(healed, tokenizer: loaded.tokenizer, chatTemplate: loaded.chatTemplate, to: output) {
            [CompressionRecord.fileName: try record.encoded()]
        }
        if json {
            try Terminal.printJSON(healing)
            return
        }
        print("healed \(loaded.source.path) → \(output): \(steps) steps of \(windowsPerStep) windows of \(length) tokens, learning rate \(learningRate)")
        print(String(format: "held-out divergence from %@: %.5f → %.5f nats/token (%d windows); training divergence %.5f (first step) → %.5f (last)",
                     teacherModel.source.path, before, after, validation.count, curve.first!, curve.last!))
    }

    /// Seeded window starts in `firstToken ... corpusTokens − length`: the validation windows first,
    /// then training windows, each redrawn while it overlaps a validation window.
    static func windows(corpusTokens: Int, firstToken: Int, length: Int, training: Int, validation: Int, seed: UInt64) throws
        -> (training: [Int], validation: [Int]) {
        let span = corpusTokens - firstToken - length
        guard span > length * (validation + 1) else {
            throw CLIError("--calibration: the corpus has \(corpusTokens) tokens, too few for windows of --length \(length) from --first-token \(firstToken) with --validation-windows \(validation) held out; lower them or pass a longer corpus")
        }
        var random = SplitMix64(seed: seed)
        func draw() -> Int { firstToken + Int(random.next() % UInt64(span)) }
        let held = (0..<validation).map { _ in draw() }
        var train: [Int] = []
        var attempts = 0
        while train.count < training {
            let s = draw()
            attempts += 1
            guard attempts < 100 * (training + 10) else { throw CLIError("could not draw training windows clear of the held-out ones; use fewer --validation-windows") }
            if held.allSatisfy({ s + length <= $0 || $0 + length <= s }) { train.append(s) }
        }
        return (train, held)
    }
}

/// What `lowrank heal` did to a checkpoint, kept in its `compression.json` (`healing`): the
/// recipe (recorded beside every number measured on the healed checkpoint) and what it measured.
public struct HealingRecord: Codable, Sendable, Equatable {
    /// How the factors were trained; everything that decides the result.
    public struct Recipe: Codable, Sendable, Equatable {
        /// `distillation-kl`: the KL divergence from the teacher's next-token distributions.
        public var objective: String
        public var teacher_model: String
        public var teacher_sha256: String
        /// The compressed checkpoint healed, and the digest of its `compression.json`.
        public var student_checkpoint: String
        public var student_compression_sha256: String?
        public var calibration_file: String
        public var calibration_sha256: String
        public var window_length: Int
        public var windows_per_step: Int
        public var steps: Int
        /// Token offsets of the training windows in order (step s uses windows s·w ..< (s + 1)·w).
        public var training_starts: [Int]
        /// Token offsets of the held-out windows whose divergence is reported before and after.
        public var validation_starts: [Int]
        public var seed: UInt64
        public var optimizer: String
        public var learning_rate: Double
        public var beta1: Double
        public var beta2: Double
        public var epsilon: Double

        public init(objective: String, teacher_model: String, teacher_sha256: String, student_checkpoint: String,
                    student_compression_sha256: String?, calibration_file: String, calibration_sha256: String, window_length: Int,
                    windows_per_step: Int, steps: Int, training_starts: [Int], validation_starts: [Int], seed: UInt64,
                    options: HealingOptions) {
            self.objective = objective
            self.teacher_model = teacher_model
            self.teacher_sha256 = teacher_sha256
            self.student_checkpoint = student_checkpoint
            self.student_compression_sha256 = student_compression_sha256
            self.calibration_file = calibration_file
            self.calibration_sha256 = calibration_sha256
            self.window_length = window_length
            self.windows_per_step = windows_per_step
            self.steps = steps
            self.training_starts = training_starts
            self.validation_starts = validation_starts
            self.seed = seed
            optimizer = "adam"
            // The shortest decimal that is the Float32 (1e-05, not 9.999999747378752e-06).
            func decimal(_ x: Float) -> Double { Double(String(describing: x))! }
            learning_rate = decimal(options.learningRate)
            beta1 = decimal(options.beta1)
            beta2 = decimal(options.beta2)
            epsilon = decimal(options.epsilon)
        }
    }

    public var recipe: Recipe
    /// Factor values trained (the checkpoint's parameter count does not change).
    public var trained_parameters: Int
    /// Mean KL divergence (nats per token) on the held-out windows before the first step and after the last.
    public var validation_divergence_before: Double
    public var validation_divergence_after: Double
    /// Mean KL divergence of each step's training windows, measured in the step's forward pass.
    public var training_divergence: [Double]
    public var seconds: Double

    public init(recipe: Recipe, trained_parameters: Int, validation_divergence_before: Double, validation_divergence_after: Double,
                training_divergence: [Double], seconds: Double) {
        self.recipe = recipe
        self.trained_parameters = trained_parameters
        self.validation_divergence_before = validation_divergence_before
        self.validation_divergence_after = validation_divergence_after
        self.training_divergence = training_divergence
        self.seconds = seconds
    }
}

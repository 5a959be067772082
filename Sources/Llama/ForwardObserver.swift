/// Points in the forward pass where an observer sees the activations.
public enum ObservationPoint: Hashable, Sendable {
    /// After the token embedding lookup.
    case embedding
    /// The normalised input of a projection group (attention input for q/k/v, the o input, the MLP
    /// input for gate/up, the down input).
    case projectionInput(layer: Int, site: InputSite)
    /// The residual stream after a whole decoder layer (both residual adds).
    case layerOutput(layer: Int)
    /// After the final RMSNorm.
    case finalNorm
}

/// Which projections read the same input (so calibration keeps one statistic per site).
public enum InputSite: String, CaseIterable, Hashable, Sendable, Codable {
    case attentionInput, attentionOutput, mlpInput, mlpHidden

    public var projections: [ProjectionKind] {
        switch self {
        case .attentionInput: [.query, .key, .value]
        case .attentionOutput: [.output]
        case .mlpInput: [.gate, .up]
        case .mlpHidden: [.down]
        }
    }
}

extension ProjectionKind {
    public var inputSite: InputSite {
        switch self {
        case .query, .key, .value: .attentionInput
        case .output: .attentionOutput
        case .gate, .up: .mlpInput
        case .down: .mlpHidden
        }
    }
}

/// Receives activations during a forward pass: `values` is `[rows × columns]` row-major and valid
/// only during the call.
public protocol ForwardObserver: AnyObject {
    /// Which points this observer wants; others are not reported (no cost).
    func wants(_ point: ObservationPoint) -> Bool
    func observe(_ point: ObservationPoint, values: UnsafePointer<Float>, rows: Int, columns: Int)
}

/// Where a right factor belongs: one projection, or a group of projections that share it.
public enum FactorOwner: Hashable, Sendable, CustomStringConvertible {
    case projection(ProjectionID)
    case group(GroupID)

    /// The module path its tensors are named under: a projection's own module, or for a shared
    /// group the fused module name other tools use (`self_attn.qkv_proj`, `mlp.gate_up_proj`).
    public var huggingFaceModule: String {
        switch self {
        case .projection(let id): id.huggingFaceModule
        case .group(let g): "model.layers.\(g.layer).\(g.site.huggingFaceGroupName)"
        }
    }

    public var description: String { huggingFaceModule }
}

extension InputSite {
    /// The module name of a group that shares one right factor.
    public var huggingFaceGroupName: String {
        switch self {
        case .attentionInput: "self_attn.qkv_proj"
        case .attentionOutput: "self_attn.o_proj"
        case .mlpInput: "mlp.gate_up_proj"
        case .mlpHidden: "mlp.down_proj"
        }
    }
}

/// Every tensor a low-rank form stores, addressed by type; names are produced here and never parsed.
public enum FactorRole: Hashable, Sendable {
    /// `B` (or `B′` when the right factor is skipped) `[outputs × rank]`: `<module>.left`.
    case left(ProjectionID)
    /// `A` `[rank × inputs]`: `<owner>.right`.
    case right(FactorOwner)
    /// `A′` `[rank × (inputs − rank)]` of a skipped right factor: `<owner>.right_remainder`.
    case rightRemainder(FactorOwner)
    /// The input channels a skipped right factor passes through, `[rank]`: `<owner>.right_selection`.
    /// Stored as F32 (exact for channel indices below 2²⁴; safetensors readers everywhere take it).
    case rightSelection(FactorOwner)
    /// A right factor shared by one projection type of consecutive layers (Basis Sharing's basis,
    /// input side) `[rank × inputs]`: `model.shared_bases.<kind>.layers_<first>_<last>.right`.
    case sharedBasis(SharedBasisID)

    public var huggingFaceName: String {
        switch self {
        case .left(let id): id.huggingFaceModule + ".left"
        case .right(let owner): owner.huggingFaceModule + ".right"
        case .rightRemainder(let owner): owner.huggingFaceModule + ".right_remainder"
        case .rightSelection(let owner): owner.huggingFaceModule + ".right_selection"
        case .sharedBasis(let b): "model.shared_bases.\(b.kind.shortName).layers_\(b.layers.lowerBound)_\(b.layers.upperBound - 1).right"
        }
    }
}

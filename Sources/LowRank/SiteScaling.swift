import LinearAlgebra
import Llama

/// One input site's scaling, which every unit reading that site shares (a Basis Sharing group's
/// from the Gram matrices summed over its layers), and what building it changed.
struct SiteScaling {
    var scaling: InputScaling
    /// Cholesky: the eigenvalue shift added to a Gram matrix that was not positive definite (0: none).
    var shift: Double = 0
    /// Eigen whitening: how many eigenvalues were raised to the floor (0: none).
    var clamped: Int = 0

    /// The scalings of `stage`'s sites of `layer` (whose units at hand are `ready`), by the
    /// recipe's method: none (svd), ASVD's activation magnitudes, or SVD-LLM's whitening of the
    /// Gram matrix (compensated: of the compressed prefix's Gram, with the ridge, then mapped onto
    /// the dense outputs). Basis Sharing adds each shared site's Gram to `groupGrams` and scales
    /// it only at the group's last layer (a site without a scaling here waits for a later layer).
    static func forStage(_ stage: [InputSite], layer: Int, recipe: CompressionRecipe, ready: [FactorizationUnit],
                         statistics: ActivationStatistics?, compensation: CompensationStatistics?,
                         groupGrams: inout [InputSite: Matrix<Double>]) throws -> [InputSite: SiteScaling] {
        var scalings: [InputSite: SiteScaling] = [:]
        for site in stage {
            let key = ActivationStatistics.Key(layer: layer, site: site)
            switch recipe.method {
            case .svd:
                scalings[site] = SiteScaling(scaling: .identity)
            case .asvd:
                guard let mean = statistics?.meanAbsolute(key) else { throw CompressionError.missingStatistics(layer: layer, site: site) }
                scalings[site] = SiteScaling(scaling: .diagonal(activationScale(meanAbsolute: mean, alpha: recipe.asvdAlpha)))
            case .svdLLM, .cat, .skip, .skipCat, .basisSharing:
                guard var gram = compensation?.symmetricGram(site) ?? statistics?.symmetricGram(key) else {
                    throw CompressionError.missingStatistics(layer: layer, site: site)
                }
                if recipe.method.sharesAcrossLayers && [.attentionInput, .mlpInput].contains(site) {
                    if var sum = groupGrams[site] {
                        for i in sum.storage.indices { sum.storage[i] += gram.storage[i] }
                        gram = sum
                    }
                    guard ready.contains(where: { $0.site == site && $0.basis != nil }) else {
                        groupGrams[site] = gram
                        continue
                    }
                    groupGrams[site] = nil
                }
                // Ridge: the fit to the dense outputs must not lean on directions X̂ barely
                // varies in (their coefficients are noise, and blow up off the calibration set).
                if compensation != nil, let ridge = recipe.compensationRidge { Whitening.addRidge(ridge, to: &gram) }
                var built: SiteScaling
                switch recipe.whitening {
                case .cholesky:
                    let whitening = try Whitening.cholesky(gram: gram)
                    built = SiteScaling(scaling: .cholesky(whitening.s), shift: whitening.shift)
                case .eigen:
                    let whitening = try Whitening.eigen(gram: gram)
                    built = SiteScaling(scaling: .eigen(vectors: whitening.vectors, roots: whitening.roots), clamped: whitening.clamped)
                }
                if let compensation {
                    guard let cross = compensation.cross[site] else { throw CompressionError.missingStatistics(layer: layer, site: site) }
                    built.scaling = .compensating(built.scaling, cross: cross)
                }
                scalings[site] = built
            }
        }
        return scalings
    }

    /// The report's eigenvalue count, for the scalings that clamp eigenvalues (nil for the others).
    var clampedEigenvalues: Int? {
        switch scaling {
        case .eigen, .compensated(whitening: .eigen, map: _): clamped
        default: nil
        }
    }
}

import Foundation
import LinearAlgebra
import ModelFormats
import Tokenization

/// The compressed-checkpoint format, written and read here only: a Hugging Face-style directory.
///
/// - `config.json`: the model's Llama configuration plus a `low_rank` section naming the form of
///   every compressed module (format version 2):
///   `{"format_version": 2, "modules": {"model.layers.0.self_attn.q_proj": {"form": "low_rank", "rank": 230}, ...}}`.
///   Forms: `low_rank` (one projection; `"skipped": true` when its right factor is block-skipped;
///   `"basis": {"kind", "first_layer", "layers"}` when its right factor is a basis shared across
///   layers: Basis Sharing's input-side basis, stored once) and `shared_right` (a group, keyed by its fused module name such as
///   `self_attn.qkv_proj`, with `"members"`). Modules not named are dense.
///   Version 1 (`{"format_version": 1, "projections": {module: {"rank": r}}}`) still loads.
/// - `model.safetensors`: a dense projection as `<module>.weight` `[out × in]`; factors by
///   `FactorRole` (`<module>.left` `[out × r]`, `<owner>.right` `[r × in]`, or for a skipped right
///   factor `<owner>.right_remainder` `[r × (in − r)]` and `<owner>.right_selection` `[r]`; shared
///   bases once as `model.shared_bases.…`). y = left · (right · x). Names do not collide with LoRA's.
/// - `tokenizer.json`, `tokenizer_config.json`: written from the source tokenizer.
/// - `compression.json`: the recipe and report (`extraFiles`).
public enum Checkpoint {
    public static let formatVersion = 2

    /// Writes `model` to `directory` atomically: everything goes to a temporary sibling directory
    /// (`.NAME.tmp-…`), which then takes the place of `directory` in one step
    /// (`AtomicWrite.replaceDirectory`), so a run killed at any moment leaves the previous checkpoint
    /// or the new one, whole. Factors are written in Float32, whatever the run precision.
    /// `savedLayers` (a streaming compression's finished layers: `writeLayerGroups` directories by
    /// layer) supplies the compressed groups of those layers instead of `model`, whose groups there
    /// are the source's dense ones; the file is the same as if `model` held them. Tensors are
    /// produced one at a time while the file streams (half-precision weights widened, saved
    /// factors copied, mapped pages released), so writing never holds a second copy of the model.
    /// `extraFiles` (such as `compression.json`) are made after the weights are written, so they
    /// can report on the writing.
    public static func write(_ model: LlamaModel, savedLayers: [Int: String] = [:], tokenizer: BPETokenizer, chatTemplate: ChatTemplate?,
                             to directory: String, extraFiles: () throws -> [String: Data] = { [:] }) throws {
        let fm = FileManager.default
        let target = URL(fileURLWithPath: directory).standardizedFileURL
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).tmp-\(UUID().uuidString)")
        try fm.createDirectory(at: temporary, withIntermediateDirectories: true)
        do {
            try writeContents(model, savedLayers: savedLayers, tokenizer: tokenizer, chatTemplate: chatTemplate, to: temporary.path, extraFiles: extraFiles)
            try AtomicWrite.replaceDirectory(target.path, with: temporary.path)
        } catch {
            try? fm.removeItem(at: temporary)
            throw error
        }
    }

    static func writeContents(_ model: LlamaModel, savedLayers: [Int: String], tokenizer: BPETokenizer, chatTemplate: ChatTemplate?,
                              to directory: String, extraFiles: () throws -> [String: Data]) throws {
        let c = model.configuration
        var tensors = TensorList()
        tensors.add(TensorRole.tokenEmbedding.huggingFaceName, model.tokenEmbedding)
        for (l, layer) in model.layers.enumerated() {
            tensors.addVector(TensorRole.attentionNorm(layer: l).huggingFaceName, layer.attentionNorm)
            tensors.addVector(TensorRole.mlpNorm(layer: l).huggingFaceName, layer.mlpNorm)
            let saved = try savedLayers[l].map { try SavedLayer(directory: $0, configuration: c) }
            for group in layer.groups {
                let id = GroupID(layer: l, site: group.site)
                if let saved, saved.groups.contains(id) { tensors.add(saved, group: id) } else { tensors.add(group, layer: l) }
            }
        }
        tensors.addVector(TensorRole.finalNorm.huggingFaceName, model.finalNorm)
        if !c.tiedEmbeddings, case .dense(let head) = model.outputHead { tensors.add(TensorRole.outputHead.huggingFaceName, head.weight) }
        var writer = SafetensorsWriter()
        writer.metadata = ["format": "pt", "producer": "lowrank"]
        writer.tensors = tensors.tensors
        try writer.write(to: directory + "/model.safetensors")

        try configJSON(c, tokenizer: tokenizer, dtype: "float32", lowRank: ["format_version": formatVersion, "modules": tensors.modules])
            .write(to: URL(fileURLWithPath: directory + "/config.json"))
        try tokenizer.huggingFaceTokenizerJSON().write(to: URL(fileURLWithPath: directory + "/tokenizer.json"))
        try tokenizer.huggingFaceTokenizerConfig(chatTemplate: chatTemplate).write(to: URL(fileURLWithPath: directory + "/tokenizer_config.json"))
        for (name, data) in try extraFiles() { try data.write(to: URL(fileURLWithPath: directory + "/" + name)) }
    }

    /// The tensors of a checkpoint being written and the `low_rank` module forms they make.
    struct TensorList {
        var tensors: [SafetensorsWriter.Tensor] = []
        var modules: [String: Any] = [:]
        var writtenBases: Set<SharedBasisID> = []

        mutating func add(_ name: String, _ m: Matrix<Float>) { tensors.append(.init(name: name, shape: [m.rows, m.columns], floats: m.storage)) }

        /// A weight in Float32: its own values, or a half-precision one widened when the file
        /// streams to it (and its mapped pages released after).
        mutating func add(_ name: String, _ w: WeightMatrix) {
            guard w.precision != .float32 else { return add(name, w.matrix) }
            tensors.append(.init(name: name, shape: [w.rows, w.columns], type: .f32, byteCount: w.count * 4, payload: .produced { buffer in
                w.widen(into: buffer.bindMemory(to: Float.self))
                w.releaseMappedPages()
            }))
        }

        /// The tensors of group `id` from a saved layer file, in the order they were written
        /// there (the order `add(_:layer:)` gives), copied as the file streams; and its module forms.
        mutating func add(_ saved: SavedLayer, group id: GroupID) {
            let names = Checkpoint.tensorNames(of: id)
            for info in saved.file.tensors where names.contains(info.name) {
                let file = saved.file
                tensors.append(.init(name: info.name, shape: info.shape, type: info.type, byteCount: info.end - info.begin, payload: .produced { buffer in
                    let bytes = file.rawBytes(of: info)
                    buffer.copyMemory(from: bytes)
                    MappedFile.releasePages(bytes.baseAddress!, count: bytes.count)
                }))
            }
            for (module, form) in saved.modules where saved.moduleGroups[module] == id { modules[module] = form }
        }
        mutating func addVector(_ name: String, _ v: [Float]) { tensors.append(.init(name: name, shape: [v.count], floats: v)) }

        /// Writes a right factor's tensors; returns whether it is skipped.
        mutating func addRight(_ right: RightFactor, owner: FactorOwner) -> Bool {
            switch right {
            case .plain(let a):
                add(FactorRole.right(owner).huggingFaceName, a.matrix)
                return false
            case .skipped(let s):
                add(FactorRole.rightRemainder(owner).huggingFaceName, s.remainder.matrix)
                addVector(FactorRole.rightSelection(owner).huggingFaceName, s.selected.map(Float.init))
                return true
            }
        }

        /// A projection group of layer `l`: dense members as `<module>.weight`, factors by role, and
        /// the module forms.
        mutating func add(_ group: ProjectionGroup, layer l: Int) {
            let kinds = group.site.projections
            switch group.layout {
            case .separate(let members):
                for (kind, member) in zip(kinds, members) {
                    let id = ProjectionID(layer: l, kind: kind)
                    switch member {
                    case .dense(let d):
                        add(TensorRole.projection(id).huggingFaceName, d.weight)
                    case .lowRank(let f):
                        precondition(f.activeRank == f.rank, "write a checkpoint at its stored ranks")
                        var entry: [String: Any] = ["form": "low_rank", "rank": f.rank]
                        add(FactorRole.left(id).huggingFaceName, f.left.matrix)
                        if let basis = f.basis {
                            // The basis is written once, under its own name, by the first layer that uses it.
                            guard case .plain(let a) = f.right else { preconditionFailure("a shared basis is a plain right factor") }
                            entry["basis"] = ["kind": basis.kind.shortName, "first_layer": basis.layers.lowerBound, "layers": basis.layers.count]
                            if writtenBases.insert(basis).inserted { add(FactorRole.sharedBasis(basis).huggingFaceName, a.matrix) }
                        } else if addRight(f.right, owner: .projection(id)) {
                            entry["skipped"] = true
                        }
                        modules[id.huggingFaceModule] = entry
                    }
                }
            case .sharedRight(let shared):
                precondition(shared.activeRank == shared.rank, "write a checkpoint at its stored ranks")
                let owner = FactorOwner.group(GroupID(layer: l, site: group.site))
                for (kind, left) in zip(kinds, shared.lefts) { add(FactorRole.left(ProjectionID(layer: l, kind: kind)).huggingFaceName, left.matrix) }
                var entry: [String: Any] = ["form": "shared_right", "rank": shared.rank, "members": kinds.map(\.shortName)]
                if addRight(shared.right, owner: owner) { entry["skipped"] = true }
                modules[owner.huggingFaceModule] = entry
            }
        }
    }

    // MARK: - One layer's groups (resumable compression)

    /// Metadata key of a layer file's module forms (the `low_rank.modules` object of config.json, as JSON).
    static let layerModulesKey = "low_rank_modules"

    /// Writes compressed groups of one layer to `directory` (`model.safetensors`, Float32, with the
    /// groups' module forms in its metadata), atomically: what a resumable compression keeps for
    /// each finished layer. `readLayerGroups` gives them back bit for bit.
    public static func writeLayerGroups(_ groups: [GroupID: ProjectionGroup], to directory: String) throws {
        var tensors = TensorList()
        for id in groups.keys.sorted() { tensors.add(groups[id]!, layer: id.layer) }
        precondition(tensors.writtenBases.isEmpty, "a basis shared across layers is not kept per layer")
        let modules = try JSONSerialization.data(withJSONObject: tensors.modules, options: [.sortedKeys])
        var writer = SafetensorsWriter()
        writer.metadata = ["format": "pt", "producer": "lowrank", layerModulesKey: String(decoding: modules, as: UTF8.self)]
        writer.tensors = tensors.tensors
        let fm = FileManager.default
        let target = URL(fileURLWithPath: directory).standardizedFileURL
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).tmp-\(UUID().uuidString)")
        try fm.createDirectory(at: temporary, withIntermediateDirectories: true)
        do {
            try writer.write(to: temporary.path + "/model.safetensors")
            try AtomicWrite.replaceDirectory(target.path, with: temporary.path)
        } catch {
            try? fm.removeItem(at: temporary)
            throw error
        }
    }

    /// The groups `writeLayerGroups` wrote to `directory`, checked as a checkpoint's are.
    public static func readLayerGroups(directory: String, configuration c: LlamaConfiguration) throws -> [GroupID: ProjectionGroup] {
        let saved = try SavedLayer(directory: directory, configuration: c)
        return try loadGroups(saved.forms, configuration: c, tensors: saved.tensors, directory: directory) { _, _ in }
    }

    /// The groups a layer file holds (its header only is read).
    public static func layerGroupIDs(directory: String, configuration c: LlamaConfiguration) throws -> Set<GroupID> {
        try SavedLayer(directory: directory, configuration: c).groups
    }

    /// A layer file written by `writeLayerGroups`, opened (mapped; values are read on use): its
    /// module forms and the groups they make.
    struct SavedLayer {
        let tensors: SafetensorsDirectory
        let file: SafetensorsFile
        let modules: [String: Any]
        let forms: [ModuleForm]
        /// The group each module belongs to.
        let moduleGroups: [String: GroupID]
        var groups: Set<GroupID> { Set(moduleGroups.values) }

        init(directory: String, configuration c: LlamaConfiguration) throws {
            tensors = try SafetensorsDirectory(directory: directory)
            let path = directory + "/model.safetensors"
            guard tensors.files.count == 1, let text = tensors.files[0].metadata[layerModulesKey], let data = text.data(using: .utf8),
                  let modules = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ModelFormatError.malformedHeader(path: path, reason: "no \(layerModulesKey) metadata: not a layer file written by lowrank compress")
            }
            file = tensors.files[0]
            self.modules = modules
            forms = try moduleForms(config: ["low_rank": ["format_version": formatVersion, "modules": modules]], configuration: c, path: path)
            var groups: [String: GroupID] = [:]
            for form in forms {
                switch form {
                case .lowRank(let id, _, _, _): groups[id.huggingFaceModule] = form.group
                case .sharedRight(let g, _, _): groups[FactorOwner.group(g).huggingFaceModule] = g
                }
            }
            moduleGroups = groups
        }
    }

    /// Every tensor name group `id` can write (`TensorList.add(_:layer:)`): its members' dense
    /// weights and left factors, and the right factors of each member and of the group.
    static func tensorNames(of id: GroupID) -> Set<String> {
        var names: Set<String> = []
        func rights(_ owner: FactorOwner) {
            names.insert(FactorRole.right(owner).huggingFaceName)
            names.insert(FactorRole.rightRemainder(owner).huggingFaceName)
            names.insert(FactorRole.rightSelection(owner).huggingFaceName)
        }
        for kind in id.site.projections {
            let p = ProjectionID(layer: id.layer, kind: kind)
            names.insert(TensorRole.projection(p).huggingFaceName)
            names.insert(FactorRole.left(p).huggingFaceName)
            rights(.projection(p))
        }
        if id.site.projections.count > 1 { rights(.group(id)) }
        return names
    }

    /// A Hugging Face Llama `config.json` for `c`, with an optional `low_rank` section.
    public static func configJSON(_ c: LlamaConfiguration, tokenizer: BPETokenizer, dtype: String, lowRank: [String: Any]?) throws -> Data {
        var config: [String: Any] = [
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": dtype, "hidden_act": "silu",
            "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize, "num_hidden_layers": c.layerCount,
            "num_attention_heads": c.attentionHeads, "num_key_value_heads": c.keyValueHeads, "head_dim": c.headDimension,
            "vocab_size": c.vocabularySize, "rms_norm_eps": Double(c.rmsNormEpsilon), "rope_theta": Double(c.ropeTheta),
            "max_position_embeddings": c.contextLength, "tie_word_embeddings": c.tiedEmbeddings,
            "bos_token_id": tokenizer.bosTokenID as Any, "eos_token_id": tokenizer.eosTokenID as Any,
        ]
        if let lowRank { config["low_rank"] = lowRank }
        return try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    }

    // MARK: - Reading

    /// One compressed module named in `config.json`.
    enum ModuleForm: Equatable {
        /// One projection `left · right`.
        case lowRank(ProjectionID, rank: Int, skipped: Bool, basis: SharedBasisID?)
        /// A group sharing one right factor.
        case sharedRight(GroupID, rank: Int, skipped: Bool)

        var group: GroupID {
            switch self {
            case .lowRank(let id, _, _, _): GroupID(layer: id.layer, site: id.kind.inputSite)
            case .sharedRight(let g, _, _): g
            }
        }
    }

    /// The compressed modules named in a `config.json`'s `low_rank` section (none for a dense model).
    static func moduleForms(config json: [String: Any], configuration c: LlamaConfiguration, path: String) throws -> [ModuleForm] {
        guard let section = json["low_rank"] else { return [] }
        guard let lowRank = section as? [String: Any], let version = lowRank["format_version"] as? Int else {
            throw ModelFormatError.invalidValue(path: path, key: "low_rank", reason: "needs a format_version and a modules object")
        }
        var projectionByModule: [String: ProjectionID] = [:]
        var groupByModule: [String: GroupID] = [:]
        for l in 0..<c.layerCount {
            for kind in ProjectionKind.allCases { projectionByModule[ProjectionID(layer: l, kind: kind).huggingFaceModule] = ProjectionID(layer: l, kind: kind) }
            for site in InputSite.allCases where site.projections.count > 1 {
                groupByModule[FactorOwner.group(GroupID(layer: l, site: site)).huggingFaceModule] = GroupID(layer: l, site: site)
            }
        }
        func rank(_ entry: [String: Any], _ key: String, limit: Int) throws -> Int {
            guard let rank = entry["rank"] as? Int, rank >= 1 else {
                throw ModelFormatError.invalidValue(path: path, key: key, reason: "needs a positive integer rank")
            }
            guard rank <= limit else { throw ModelFormatError.invalidValue(path: path, key: key, reason: "rank \(rank) exceeds \(limit)") }
            return rank
        }
        var forms: [ModuleForm] = []
        switch version {
        case 1:
            let projections = lowRank["projections"] as? [String: Any] ?? [:]
            for (module, value) in projections.sorted(by: { $0.key < $1.key }) {
                guard let id = projectionByModule[module] else {
                    throw ModelFormatError.invalidValue(path: path, key: "low_rank.projections", reason: "'\(module)' is not a projection of this model")
                }
                let s = c.shape(of: id.kind)
                let r = try rank(value as? [String: Any] ?? [:], "low_rank.projections.\(module)", limit: min(s.outputs, s.inputs))
                forms.append(.lowRank(id, rank: r, skipped: false, basis: nil))
            }
        case 2:
            guard let modules = lowRank["modules"] as? [String: Any] else {
                throw ModelFormatError.invalidValue(path: path, key: "low_rank.modules", reason: "needs an object of module forms")
            }
            for (module, value) in modules.sorted(by: { $0.key < $1.key }) {
                let key = "low_rank.modules.\(module)"
                guard let entry = value as? [String: Any], let form = entry["form"] as? String else {
                    throw ModelFormatError.invalidValue(path: path, key: key, reason: "needs a \"form\" (low_rank or shared_right)")
                }
                let skipped = entry["skipped"] as? Bool ?? false
                switch form {
                case "low_rank":
                    guard let id = projectionByModule[module] else {
                        throw ModelFormatError.invalidValue(path: path, key: key, reason: "'\(module)' is not a projection of this model")
                    }
                    let s = c.shape(of: id.kind)
                    var basis: SharedBasisID?
                    if let b = entry["basis"] {
                        guard let b = b as? [String: Any], let kindName = b["kind"] as? String,
                              let kind = ProjectionKind.allCases.first(where: { $0.shortName == kindName }), kind == id.kind,
                              let first = b["first_layer"] as? Int, let count = b["layers"] as? Int,
                              count >= 1, first >= 0, first + count <= c.layerCount, (first..<first + count).contains(id.layer) else {
                            throw ModelFormatError.invalidValue(path: path, key: key + ".basis",
                                                                reason: "needs kind \(id.kind.shortName), first_layer and layers covering layer \(id.layer)")
                        }
                        guard !skipped else {
                            throw ModelFormatError.invalidValue(path: path, key: key, reason: "a shared basis is a plain right factor; it cannot be skipped")
                        }
                        basis = SharedBasisID(kind: kind, layers: first..<first + count)
                    }
                    // A basis shared by n layers may hold more ranks than one layer has outputs.
                    let r = try rank(entry, key, limit: skipped ? s.inputs - 1 : basis != nil ? s.inputs : min(s.outputs, s.inputs))
                    forms.append(.lowRank(id, rank: r, skipped: skipped, basis: basis))
                case "shared_right":
                    guard let g = groupByModule[module] else {
                        throw ModelFormatError.invalidValue(path: path, key: key, reason: "'\(module)' is not a projection group of this model (qkv_proj, gate_up_proj)")
                    }
                    let inputs = c.shape(of: g.site.projections[0]).inputs
                    forms.append(.sharedRight(g, rank: try rank(entry, key, limit: skipped ? inputs - 1 : inputs), skipped: skipped))
                default:
                    throw ModelFormatError.invalidValue(path: path, key: key + ".form", reason: "'\(form)' is not a form this lowrank reads (low_rank, shared_right)")
                }
            }
        default:
            throw ModelFormatError.invalidValue(path: path, key: "low_rank.format_version",
                                                reason: "version \(version) is not supported (this lowrank reads 1 and 2)")
        }
        var seen: Set<GroupID> = []
        for case .sharedRight(let g, _, _) in forms { seen.insert(g) }
        for case .lowRank(let id, _, _, _) in forms where seen.contains(GroupID(layer: id.layer, site: id.kind.inputSite)) {
            throw ModelFormatError.invalidValue(path: path, key: "low_rank.modules.\(id.huggingFaceModule)",
                                                reason: "its group already shares a right factor")
        }
        return forms
    }

    /// The tensor names a checkpoint with `forms` holds instead of the dense weights they replace.
    static func tensorNames(of forms: [ModuleForm]) -> (added: Set<String>, replaced: Set<String>) {
        var added: Set<String> = [], replaced: Set<String> = []
        func right(_ owner: FactorOwner, skipped: Bool) {
            if skipped {
                added.insert(FactorRole.rightRemainder(owner).huggingFaceName)
                added.insert(FactorRole.rightSelection(owner).huggingFaceName)
            } else {
                added.insert(FactorRole.right(owner).huggingFaceName)
            }
        }
        for form in forms {
            switch form {
            case .lowRank(let id, _, let skipped, let basis):
                replaced.insert(TensorRole.projection(id).huggingFaceName)
                added.insert(FactorRole.left(id).huggingFaceName)
                if let basis { added.insert(FactorRole.sharedBasis(basis).huggingFaceName) } else { right(.projection(id), skipped: skipped) }
            case .sharedRight(let g, _, let skipped):
                for kind in g.site.projections {
                    let id = ProjectionID(layer: g.layer, kind: kind)
                    replaced.insert(TensorRole.projection(id).huggingFaceName)
                    added.insert(FactorRole.left(id).huggingFaceName)
                }
                right(.group(g), skipped: skipped)
            }
        }
        return (added, replaced)
    }

    /// Builds the compressed groups straight from the tensors (dense members of a compressed group
    /// are read too), checking every shape and every channel selection.
    static func loadGroups(_ forms: [ModuleForm], configuration c: LlamaConfiguration, tensors: SafetensorsDirectory,
                           directory: String, noteType: (String, ElementType) -> Void) throws -> [GroupID: ProjectionGroup] {
        func matrix(_ name: String, _ shape: [Int], group: String) throws -> Matrix<Float> {
            guard let (file, info) = tensors.info(named: name) else { throw ModelFormatError.missingTensor(path: directory, tensor: name) }
            guard info.shape == shape else { throw ModelFormatError.shapeMismatch(path: directory, tensor: name, expected: shape, found: info.shape) }
            noteType(group, info.type)
            let values = file.floats(of: info)
            let bad = values.lazy.filter { !$0.isFinite }.count
            guard bad == 0 else {
                throw ModelFormatError.invalidValue(path: directory, key: name, reason: "\(bad) non-finite values; the checkpoint is damaged, recompress")
            }
            return Matrix(rows: shape[0], columns: shape.count > 1 ? shape[1] : 1, storage: values)
        }
        func right(_ owner: FactorOwner, rank r: Int, inputs n: Int, skipped: Bool, group: String) throws -> RightFactor {
            guard skipped else { return .plain(WeightMatrix(try matrix(FactorRole.right(owner).huggingFaceName, [r, n], group: group))) }
            let selectionName = FactorRole.rightSelection(owner).huggingFaceName
            let raw = try matrix(selectionName, [r], group: group).storage
            let selected = raw.map { Int($0) }
            guard zip(raw, selected).allSatisfy({ Float($1) == $0 }), selected.allSatisfy({ $0 >= 0 && $0 < n }), Set(selected).count == r else {
                throw ModelFormatError.invalidValue(path: directory, key: selectionName, reason: "needs \(r) distinct channel indices in 0..<\(n)")
            }
            let remainder = try matrix(FactorRole.rightRemainder(owner).huggingFaceName, [r, n - r], group: group)
            return .skipped(SkippedRightFactor(inputs: n, selected: selected, remainder: WeightMatrix(remainder)))
        }
        var bases: [SharedBasisID: RightFactor] = [:]
        var groups: [GroupID: [ProjectionKind: Linear]] = [:]
        var shared: [GroupID: ProjectionGroup] = [:]
        for form in forms {
            switch form {
            case .lowRank(let id, let r, let skipped, let basis):
                let s = c.shape(of: id.kind)
                let left = LeftFactor(try matrix(FactorRole.left(id).huggingFaceName, [s.outputs, r], group: id.kind.shortName))
                let rightFactor: RightFactor
                if let basis {
                    if let existing = bases[basis] {
                        guard existing.rank == r else {
                            throw ModelFormatError.invalidValue(path: directory, key: id.huggingFaceModule,
                                                                reason: "rank \(r) differs from its shared basis (\(existing.rank))")
                        }
                        rightFactor = existing  // the same storage for every layer of the group
                    } else {
                        rightFactor = .plain(WeightMatrix(try matrix(FactorRole.sharedBasis(basis).huggingFaceName, [r, s.inputs], group: id.kind.shortName)))
                        bases[basis] = rightFactor
                    }
                } else {
                    rightFactor = try right(.projection(id), rank: r, inputs: s.inputs, skipped: skipped, group: id.kind.shortName)
                }
                groups[form.group, default: [:]][id.kind] = .lowRank(LowRankLinear(left: left, right: rightFactor, basis: basis))
            case .sharedRight(let g, let r, let skipped):
                let inputs = c.shape(of: g.site.projections[0]).inputs
                let rightFactor = try right(.group(g), rank: r, inputs: inputs, skipped: skipped, group: g.site.huggingFaceGroupName)
                let lefts = try g.site.projections.map { kind in
                    LeftFactor(try matrix(FactorRole.left(ProjectionID(layer: g.layer, kind: kind)).huggingFaceName,
                                            [c.shape(of: kind).outputs, r], group: kind.shortName))
                }
                shared[g] = ProjectionGroup(site: g.site, layout: .sharedRight(SharedRightGroup(right: rightFactor, lefts: lefts)))
            }
        }
        var out = shared
        for (g, members) in groups {
            let linears = try g.site.projections.map { kind -> Linear in
                if let m = members[kind] { return m }
                let id = ProjectionID(layer: g.layer, kind: kind)
                let s = c.shape(of: kind)
                return .dense(DenseLinear(try matrix(TensorRole.projection(id).huggingFaceName, [s.outputs, s.inputs], group: kind.shortName)))
            }
            out[g] = ProjectionGroup(site: g.site, layout: .separate(linears))
        }
        return out
    }
}

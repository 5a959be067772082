import Foundation

/// The safetensors weights of a Hugging Face model directory: `model.safetensors`, or the shards
/// listed in `model.safetensors.index.json` (`{"weight_map": {tensor: file}}`).
public struct SafetensorsDirectory: Sendable {
    public let directory: String
    public let files: [SafetensorsFile]
    /// Tensor name → index into `files`.
    private let owner: [String: Int]

    public init(directory: String) throws(ModelFormatError) {
        self.directory = directory
        let indexPath = directory + "/model.safetensors.index.json"
        let singlePath = directory + "/model.safetensors"
        if FileManager.default.fileExists(atPath: indexPath) {
            let data = try FileBytes.read(indexPath)
            guard let object = try? JSONSerialization.jsonObject(with: data) else {
                throw .malformedJSON(path: indexPath, reason: "does not parse")
            }
            guard let root = object as? [String: Any], let map = root["weight_map"] as? [String: Any] else {
                throw .malformedJSON(path: indexPath, reason: "no \"weight_map\" object")
            }
            var shardNames: [String] = []
            var shardOf: [String: String] = [:]
            for (tensor, value) in map {
                guard let shard = value as? String, !shard.contains("/") else {
                    throw .malformedJSON(path: indexPath, reason: "weight_map['\(tensor)'] is not a file name in this directory")
                }
                shardOf[tensor] = shard
                if !shardNames.contains(shard) { shardNames.append(shard) }
            }
            shardNames.sort()
            var files: [SafetensorsFile] = []
            for name in shardNames { files.append(try SafetensorsFile(path: directory + "/" + name)) }
            var owner: [String: Int] = [:]
            for (tensor, shard) in shardOf {
                let fileIndex = shardNames.firstIndex(of: shard)!
                guard files[fileIndex].tensorInfo(named: tensor) != nil else {
                    throw .missingTensor(path: directory + "/" + shard, tensor: tensor)
                }
                owner[tensor] = fileIndex
            }
            for (fileIndex, file) in files.enumerated() {
                for info in file.tensors where owner[info.name] == nil {
                    throw .malformedJSON(path: indexPath, reason: "tensor '\(info.name)' in \(shardNames[fileIndex]) is not in weight_map")
                }
            }
            self.files = files
            self.owner = owner
        } else {
            let file = try SafetensorsFile(path: singlePath)
            files = [file]
            owner = Dictionary(uniqueKeysWithValues: file.tensors.map { ($0.name, 0) })
        }
    }

    public var tensorNames: [String] { owner.keys.sorted() }

    public func info(named name: String) -> (SafetensorsFile, SafetensorsTensorInfo)? {
        guard let fileIndex = owner[name], let info = files[fileIndex].tensorInfo(named: name) else { return nil }
        return (files[fileIndex], info)
    }
}

import Foundation

/// The weights in a Keras 2 / tf_keras HDF5 file, as `save_weights`, `ModelCheckpoint(save_weights_only=True)`
/// or `model.save` (under `model_weights/`) write them: the root attribute `layer_names`, and per layer a group
/// whose attribute `weight_names` lists its datasets (`<layer>/<weight name>`, which may nest further).
/// Keras matches weights to layers by position, so layer names may differ between files of one architecture.
public struct KerasWeights {
    public struct Weight: Equatable {
        /// As stored, e.g. "mobilenetv2_1.00_84/Conv1/kernel:0".
        public var name: String
        public var shape: [Int]
        public var values: [Float]

        /// "Conv1/kernel": the last two path parts without ":0" (the layer and the variable).
        public var shortName: String {
            let parts = name.split(separator: "/").suffix(2).joined(separator: "/")
            return parts.hasSuffix(":0") ? String(parts.dropLast(2)) : parts
        }
    }

    public struct Layer: Equatable {
        public var name: String
        public var weights: [Weight]
    }

    public var file: String
    /// Every layer of `layer_names`, in order (layers without weights included).
    public var layers: [Layer]
    public var kerasVersion: String?
    public var backend: String?

    public var weights: [Weight] { layers.flatMap(\.weights) }

    public init(contentsOf path: String) throws {
        let h5 = try HDF5File(reading: path)
        file = path
        var root = ""
        if try h5.stringsAttribute("layer_names") == nil, try h5.stringsAttribute("layer_names", of: "model_weights") != nil {
            root = "model_weights"  // a full-model file from model.save
        }
        guard let names = try h5.stringsAttribute("layer_names", of: root) else {
            if h5.isGroup("layers") && h5.isGroup("vars") {
                throw HDF5Error(path, "a Keras 3 .weights.h5 file; Kizuki reads Keras 2 / tf_keras weight files (layer_names) so far")
            }
            throw HDF5Error(path, "not a Keras weight file: no 'layer_names' attribute at the root or under 'model_weights'")
        }
        kerasVersion = try h5.stringsAttribute("keras_version", of: root)?.first
        backend = try h5.stringsAttribute("backend", of: root)?.first
        layers = try names.map { layer in
            let group = root.isEmpty ? layer : root + "/" + layer
            guard h5.isGroup(group) else { throw HDF5Error(path, "layer '\(layer)' is listed in layer_names but has no group") }
            let weightNames = try h5.stringsAttribute("weight_names", of: group) ?? []
            let weights = try weightNames.map { name in
                let object = group + "/" + name
                let shape = try h5.shape(object)
                let values = try h5.floats(object)
                guard values.allSatisfy(\.isFinite) else { throw HDF5Error(path, "weight '\(name)' of layer '\(layer)' holds NaN or Inf") }
                return Weight(name: name, shape: shape, values: values)
            }
            return Layer(name: layer, weights: weights)
        }
    }
}

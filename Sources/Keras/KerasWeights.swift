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

        public init(name: String, shape: [Int], values: [Float]) {
            self.name = name
            self.shape = shape
            self.values = values
        }

        /// "Conv1/kernel": the last two path parts without ":0" (the layer and the variable).
        public var shortName: String {
            let parts = name.split(separator: "/").suffix(2).joined(separator: "/")
            return parts.hasSuffix(":0") ? String(parts.dropLast(2)) : parts
        }
    }

    public struct Layer: Equatable {
        public var name: String
        public var weights: [Weight]

        public init(name: String, weights: [Weight]) {
            self.name = name
            self.weights = weights
        }
    }

    public var file: String
    /// Every layer of `layer_names`, in order (layers without weights included).
    public var layers: [Layer]
    public var kerasVersion: String?
    public var backend: String?

    public var weights: [Weight] { layers.flatMap(\.weights) }

    public init(file: String, layers: [Layer], kerasVersion: String?, backend: String?) {
        self.file = file
        self.layers = layers
        self.kerasVersion = kerasVersion
        self.backend = backend
    }

    public init(contentsOf path: String) throws {
        let h5 = try HDF5File(reading: path)
        file = path
        var root = ""
        if try h5.stringsAttribute("layer_names") == nil, try h5.stringsAttribute("layer_names", of: "model_weights") != nil {
            root = "model_weights"  // a full-model file from model.save
        }
        guard let names = try h5.stringsAttribute("layer_names", of: root) else {
            if try Keras3Weights.isKeras3(h5) { throw HDF5Error(path, "a Keras 3 .weights.h5 file, not the Keras 2 layout (layer_names)") }
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

extension KerasWeights {
    /// Writes the Keras 2 layout that both tf_keras and Keras 3 load by position: root `layer_names` (the layers
    /// with weights), per layer a group with `weight_names`, and float32 datasets at `<layer>/<weight name>`.
    /// Weight names may nest (`mobilenetv2_1.00_84/Conv1/kernel:0` is the dataset `Conv1/kernel:0` of that layer).
    public func write(to path: String) throws {
        try HDF5File.write(path) { h5 in
            let written = layers.filter { !$0.weights.isEmpty }
            try h5.writeStringsAttribute("layer_names", written.map(\.name))
            if let backend { try h5.writeStringsAttribute("backend", [backend], scalar: true) }
            if let kerasVersion { try h5.writeStringsAttribute("keras_version", [kerasVersion], scalar: true) }
            for layer in written {
                try h5.createGroup(layer.name)
                try h5.writeStringsAttribute("weight_names", layer.weights.map(\.name), of: layer.name)
                for w in layer.weights {
                    let object = layer.name + "/" + w.name
                    try h5.createGroup(object.split(separator: "/").dropLast().joined(separator: "/"))
                    try h5.writeFloats(object, w.values, shape: w.shape)
                }
            }
        }
    }
}

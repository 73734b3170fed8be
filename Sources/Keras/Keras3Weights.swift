import Foundation

/// The weights in a Keras 3 `.weights.h5` file (`model.save_weights`): every layer is a group at a path made of
/// class-based names (`layers/functional/layers/conv2d_34`), whose `vars` group holds the layer's variables as
/// datasets "0", "1", … in the layer's own order (BatchNormalization: gamma, beta, moving mean, moving variance)
/// and carries the layer's name as attribute `name`. Keras 3 matches them by path.
public struct Keras3Weights {
    public struct Layer: Equatable {
        /// The layer's group, e.g. "layers/functional/layers/conv2d_34".
        public var path: String
        /// The Keras layer name (`Conv_1`), from the `vars` group's `name` attribute, if present.
        public var name: String?
        /// Variables in order; each named by its dataset path under `path` ("vars/0").
        public var variables: [KerasWeights.Weight]

        public init(path: String, name: String?, variables: [KerasWeights.Weight]) {
            self.path = path
            self.name = name
            self.variables = variables
        }
    }

    public var file: String
    /// The layers with variables, in path order with numbers compared as numbers (conv2d_2 before conv2d_10).
    public var layers: [Layer]

    public init(file: String, layers: [Layer]) {
        self.file = file
        self.layers = layers
    }

    /// Whether `h5` looks like a Keras 3 weights file (a `layers` or `vars` group and no `layer_names`).
    static func isKeras3(_ h5: HDF5File) throws -> Bool {
        try h5.stringsAttribute("layer_names") == nil && (h5.isGroup("layers") || h5.isGroup("vars"))
    }

    /// Whether the HDF5 file at `path` is a Keras 3 weights file rather than a Keras 2 one.
    public static func isKeras3(file path: String) throws -> Bool { try isKeras3(HDF5File(reading: path)) }

    public init(contentsOf path: String) throws {
        let h5 = try HDF5File(reading: path)
        guard try Self.isKeras3(h5) else { throw HDF5Error(path, "not a Keras 3 .weights.h5 file: no 'layers' or 'vars' group at the root") }
        file = path
        var found: [Layer] = []
        // Depth and count are bounded: hard links can make an HDF5 group graph cyclic.
        var pending: [(group: String, depth: Int)] = [("", 0)]
        var visited = 0
        while let (group, depth) = pending.popLast() {
            visited += 1
            guard depth <= 32, visited <= 100_000 else { throw HDF5Error(path, "groups nest too deep or too many (at '\(group)')") }
            for child in try h5.children(of: group) {
                let object = group.isEmpty ? child : group + "/" + child
                guard h5.isGroup(object) else { continue }
                if child == "vars" {
                    let variables = try Self.readVariables(h5, object)
                    if !variables.isEmpty {
                        found.append(Layer(path: group, name: try h5.stringsAttribute("name", of: object)?.first, variables: variables))
                    }
                } else {
                    pending.append((object, depth + 1))
                }
            }
        }
        layers = found.sorted { $0.path.compare($1.path, options: .numeric) == .orderedAscending }
    }

    /// The datasets "0" … "n-1" of a `vars` group, in order.
    private static func readVariables(_ h5: HDF5File, _ vars: String) throws -> [KerasWeights.Weight] {
        let names = try h5.children(of: vars)
        let indices = names.compactMap(Int.init).sorted()
        guard indices == Array(0..<names.count) else {
            throw HDF5Error(h5.path, "'\(vars)' holds \(names.prefix(8)) instead of variables named 0…\(names.count - 1)")
        }
        return try indices.map { i in
            let object = "\(vars)/\(i)"
            let values = try h5.floats(object)
            guard values.allSatisfy(\.isFinite) else { throw HDF5Error(h5.path, "variable '\(object)' holds NaN or Inf") }
            return KerasWeights.Weight(name: "vars/\(i)", shape: try h5.shape(object), values: values)
        }
    }

    /// Writes every layer as Keras 3 does: `<path>/vars/<i>` float32 datasets, the layer name as the `vars`
    /// group's `name` attribute. Through a temporary file renamed into place.
    public func write(to path: String) throws {
        try HDF5File.write(path) { h5 in
            for layer in layers {
                let vars = layer.path + "/vars"
                try h5.createGroup(vars)
                if let name = layer.name { try h5.writeStringsAttribute("name", [name], of: vars, scalar: true) }
                for (i, v) in layer.variables.enumerated() { try h5.writeFloats("\(vars)/\(i)", v.values, shape: v.shape) }
            }
        }
    }
}

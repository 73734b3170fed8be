import Foundation
import OnnxIO
import Training

/// Where a Keras model of the reference embedder keeps its MobileNetV2: as one nested layer (the reference
/// recipe: `base = MobileNetV2(...)`, `Dense(128)(base(x))`) or inlined layer by layer
/// (`MobileNetV2(input_tensor=...)`, as in the shared keras-seed model).
public enum KerasLayout: String, CaseIterable, Sendable {
    case nested, flat
}

/// Keras weight files of Kizuki's reference embedder (`MobileNetV2Embedder`), both ways: Keras 2 / tf_keras
/// `.h5` (matched by position, as Keras does) and Keras 3 `.weights.h5` (matched by path).
public enum EmbedderKerasWeights {
    /// The nested MobileNetV2's layer name, as keras.applications names it for alpha 1 and 84x84 inputs.
    static let baseName = "mobilenetv2_1.00_84"
    /// ONNX metadata keys recording where imported weights came from, so an export writes the same layout.
    public static let layoutKey = "keras_layout"
    public static let denseNameKey = "keras_dense_name"

    public struct Imported {
        /// The training-form graph with the file's weights (checkpoint.onnx, and what `train --init` takes).
        public var graph: TrainingGraph
        public var layout: KerasLayout
        /// "Keras 2" or "Keras 3", with the file's keras_version when it has one.
        public var format: String
        public var denseName: String
    }

    // MARK: - Keras's view of the embedder's parameters

    /// One Keras layer with weights: its name, its Keras 3 class-based name and its parameters in Keras's order.
    struct KerasLayer {
        var name: String
        var className: String
        var parameters: [ParameterInfo]
    }

    /// The embedder's layers with weights in model order (MobileNetV2's, then the Dense last).
    static func kerasLayers(_ parameters: [ParameterInfo]) -> [KerasLayer] {
        var layers: [KerasLayer] = []
        for p in parameters {
            let layer = String(p.name.split(separator: "/").dropLast().joined(separator: "/"))
            if layers.last?.name == layer { layers[layers.count - 1].parameters.append(p); continue }
            let className: String
            switch p.layout {
            case .convKernel: className = "conv2d"
            case .depthwiseKernel: className = "depthwise_conv2d"
            case .plain: className = p.name.hasSuffix("/gamma") ? "batch_normalization" : "dense"
            }
            layers.append(KerasLayer(name: layer, className: className, parameters: [p]))
        }
        return layers
    }

    /// Keras 3's paths: class-based names numbered per class in model order (`conv2d`, `conv2d_1`, …), under
    /// `layers/functional/layers/` for the nested MobileNetV2; the Dense is top-level `layers/dense` either way.
    static func keras3Paths(_ layers: [KerasLayer], layout: KerasLayout) -> [String] {
        var used: [String: Int] = [:]
        return layers.enumerated().map { i, layer in
            if i == layers.count - 1 { return "layers/" + layer.className }
            let n = used[layer.className, default: 0]
            used[layer.className] = n + 1
            return (layout == .nested ? "layers/functional/layers/" : "layers/") + layer.className + (n == 0 ? "" : "_\(n)")
        }
    }

    /// Keras 2's layers with weights, each with its parameters in Keras's weight order: the nested MobileNetV2
    /// lists every trainable weight first, then every moving statistic (Keras's `layer.weights`).
    static func keras2Layers(_ layers: [KerasLayer], layout: KerasLayout, denseName: String) -> [(name: String, parameters: [ParameterInfo], weightPrefix: String)] {
        let dense = layers[layers.count - 1], base = layers.dropLast()
        var out: [(name: String, parameters: [ParameterInfo], weightPrefix: String)]
        switch layout {
        case .flat:
            out = base.map { ($0.name, $0.parameters, "") }
        case .nested:
            let all = base.flatMap(\.parameters)
            out = [(baseName, all.filter(\.trainable) + all.filter { !$0.trainable }, "")]
        }
        out.append((denseName, dense.parameters, denseName + "/"))
        return out
    }

    /// The Keras weight name of a parameter ("Conv1/kernel:0"; the Dense's under its own layer name).
    static func keras2WeightName(_ p: ParameterInfo, prefix: String) -> String {
        (prefix.isEmpty ? p.name : prefix + p.name.split(separator: "/").last!) + ":0"
    }

    // MARK: - Import

    /// Reads a Keras 2 `.h5`/`.hdf5` (weights or full model) or Keras 3 `.weights.h5` file of the reference
    /// embedder into its training graph. Every layer count and shape is checked; errors name the file and layer.
    public static func read(_ path: String) throws -> Imported {
        let h5 = try HDF5File(reading: path)
        let keras3 = try Keras3Weights.isKeras3(h5)
        var imported = keras3 ? try readKeras3(Keras3Weights(contentsOf: path)) : try readKeras2(KerasWeights(contentsOf: path))
        // Only what an export needs: a re-import of an export is then bit-identical to the first import.
        imported.graph.model.metadataProps = [StringPair(layoutKey, imported.layout.rawValue), StringPair(denseNameKey, imported.denseName)]
        return imported
    }

    /// The embedder whose Dense layer has the given Keras kernel shape ([1280, size]).
    private static func embedder(denseKernel shape: [Int]?, _ file: String, _ what: String) throws -> [ParameterInfo] {
        guard let shape, shape.count == 2, shape[0] == 1280, (1...65536).contains(shape[1]) else {
            throw HDF5Error(file, "\(what) is not the embedder's Dense layer: its kernel has shape \(shape.map { "\($0)" } ?? "none"), expected [1280, embedding size]")
        }
        return MobileNetV2Embedder(embeddingSize: shape[1]).build(seed: 0).parameters
    }

    private static func readKeras2(_ file: KerasWeights) throws -> Imported {
        let withWeights = file.layers.filter { !$0.weights.isEmpty }
        guard let last = withWeights.last else { throw HDF5Error(file.file, "no layer has weights") }
        let layers = kerasLayers(try embedder(denseKernel: last.weights.first?.shape, file.file, "the last layer with weights, '\(last.name)',"))
        let layout: KerasLayout
        switch withWeights.count {
        case layers.count: layout = .flat
        case 2: layout = .nested
        default:
            throw HDF5Error(file.file, "\(withWeights.count) layers have weights; the reference embedder has \(layers.count) "
                + "(MobileNetV2 inlined, then the Dense) or 2 (MobileNetV2 as one nested layer, then the Dense)")
        }
        var values: [String: [Float]] = [:]
        for (layer, expected) in zip(withWeights, keras2Layers(layers, layout: layout, denseName: last.name)) {
            guard layer.weights.count == expected.parameters.count else {
                throw HDF5Error(file.file, "layer '\(layer.name)' has \(layer.weights.count) weights; in this position the embedder's layer "
                    + "'\(expected.name)' has \(expected.parameters.count) (\(expected.parameters.map(\.name).prefix(4).joined(separator: ", ")))")
            }
            for (w, p) in zip(layer.weights, expected.parameters) {
                values[p.name] = try convert(w, to: p, file.file, "weight '\(w.name)' of layer '\(layer.name)'")
            }
        }
        let version = file.kerasVersion.map { " (keras_version \($0))" } ?? ""
        return Imported(graph: try graph(values, layers), layout: layout, format: "Keras 2" + version, denseName: last.name)
    }

    private static func readKeras3(_ file: Keras3Weights) throws -> Imported {
        let byPath = Dictionary(file.layers.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        let layers = kerasLayers(try embedder(denseKernel: byPath["layers/dense"]?.variables.first?.shape, file.file, "'layers/dense'"))
        let layout: KerasLayout = file.layers.contains { $0.path.hasPrefix("layers/functional/") } ? .nested : .flat
        var values: [String: [Float]] = [:]
        let paths = keras3Paths(layers, layout: layout)
        for (path, layer) in zip(paths, layers) {
            guard let found = byPath[path] else {
                throw HDF5Error(file.file, "no variables at '\(path)', where the \(layout) embedder keeps layer '\(layer.name)'")
            }
            let what = "layer '\(found.name ?? path)' at '\(path)'"
            guard found.variables.count == layer.parameters.count else {
                throw HDF5Error(file.file, "\(what) has \(found.variables.count) variables; the embedder's '\(layer.name)' has \(layer.parameters.count)")
            }
            for (v, p) in zip(found.variables, layer.parameters) {
                values[p.name] = try convert(v, to: p, file.file, "\(what), variable \(v.name.split(separator: "/").last!)")
            }
        }
        if let extra = file.layers.first(where: { !paths.contains($0.path) }) {
            throw HDF5Error(file.file, "layer '\(extra.name ?? extra.path)' at '\(extra.path)' is not part of the \(layout) reference embedder")
        }
        return Imported(graph: try graph(values, layers), layout: layout, format: "Keras 3", denseName: byPath["layers/dense"]?.name ?? "dense")
    }

    /// A file weight in Kizuki's layout, after checking its shape against the parameter's Keras shape.
    private static func convert(_ w: KerasWeights.Weight, to p: ParameterInfo, _ file: String, _ what: String) throws -> [Float] {
        guard w.shape == p.kerasShape else {
            throw HDF5Error(file, "\(what) has shape \(w.shape); the embedder's '\(p.name)' in this position has \(p.kerasShape)")
        }
        return p.fromKeras(w.values)
    }

    private static func graph(_ values: [String: [Float]], _ layers: [KerasLayer]) throws -> TrainingGraph {
        let parameters = layers.flatMap(\.parameters)
        let embeddingSize = parameters.last!.shape[0]
        var model = MobileNetV2Embedder(embeddingSize: embeddingSize).build(seed: 0).model
        for (i, t) in model.graph.initializers.enumerated() {
            if let v = values[t.name] { model.graph.initializers[i] = Tensor(name: t.name, floats: v, dims: t.dims) }
        }
        return TrainingGraph(model: model, parameters: parameters)
    }

    // MARK: - Export

    /// Writes the embedder's weights from `model` (a Kizuki training-form checkpoint, named `file` in errors) as
    /// a Keras 3 `.weights.h5` or a Keras 2 `.h5`/`.hdf5`, by the extension of `path`. `layout` and `denseName`
    /// default to what the model's metadata recorded at import, else the reference recipe's (nested, "dense").
    @discardableResult
    public static func write(_ model: Model, file: String, to path: String, layout: KerasLayout? = nil,
                             denseName: String? = nil) throws -> (layout: KerasLayout, denseName: String) {
        let lower = path.lowercased()
        let keras3 = lower.hasSuffix(".weights.h5")
        guard keras3 || lower.hasSuffix(".h5") || lower.hasSuffix(".hdf5") else {
            throw HDF5Error(path, "unknown Keras file type: name it .h5 / .hdf5 (Keras 2 layout) or .weights.h5 (Keras 3)")
        }
        let metadata = Dictionary(model.metadataProps.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        let layout = layout ?? metadata[layoutKey].flatMap(KerasLayout.init(rawValue:)) ?? .nested
        let denseName = denseName ?? metadata[denseNameKey] ?? "dense"
        let (layers, values) = try embedderWeights(model, file)

        if keras3 {
            let paths = keras3Paths(layers, layout: layout)
            let out = zip(paths, layers).map { path, layer in
                Keras3Weights.Layer(path: path, name: path == paths.last ? denseName : layer.name, variables: layer.parameters.enumerated().map { i, p in
                    KerasWeights.Weight(name: "vars/\(i)", shape: p.kerasShape, values: values[p.name]!)
                })
            }
            try Keras3Weights(file: path, layers: out).write(to: path)
        } else {
            let out = keras2Layers(layers, layout: layout, denseName: denseName).map { layer in
                KerasWeights.Layer(name: layer.name, weights: layer.parameters.map { p in
                    KerasWeights.Weight(name: keras2WeightName(p, prefix: layer.weightPrefix), shape: p.kerasShape, values: values[p.name]!)
                })
            }
            // The format written is tf_keras 2.21's (the version the tests load it with); Keras reads keras_version
            // to decide on Keras 1 conversions, which a missing attribute would trigger.
            try KerasWeights(file: path, layers: out, kerasVersion: "2.21.0", backend: "tensorflow").write(to: path)
        }
        return (layout, denseName)
    }

    /// The embedder's layers and every parameter's values in Keras's layout, after checking that `model` is a
    /// training-form checkpoint of the reference embedder.
    private static func embedderWeights(_ model: Model, _ file: String) throws -> ([KerasLayer], [String: [Float]]) {
        let initializers = Dictionary(model.graph.initializers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        guard let dense = initializers["dense/kernel"], dense.dims.count == 2 else {
            throw TrainingError("\(file): not a Kizuki checkpoint of the reference embedder (no 'dense/kernel'). A tf2onnx export has its "
                + "BatchNormalization folded into the convolutions and cannot be written back; import the Keras weights instead")
        }
        let expected = MobileNetV2Embedder(embeddingSize: dense.dims[1]).build(seed: 0).parameters
        let found = try TrainingGraph(model: model, file: file).parameters
        if found != expected {
            let names = Set(found.map(\.name))
            let problem = expected.first { !names.contains($0.name) }.map { "no parameter '\($0.name)'" }
                ?? zip(found, expected).first { $0 != $1 }.map { "'\($0.name)' is \($0.shape), expected '\($1.name)' \($1.shape)" }
                ?? "\(found.count) parameters, expected \(expected.count)"
            throw TrainingError("\(file): not a checkpoint of the reference embedder: \(problem)")
        }
        var values: [String: [Float]] = [:]
        for p in expected {
            let t = initializers[p.name]!
            guard t.dataType == .float else { throw TrainingError("\(file): parameter '\(p.name)' is \(t.dataType), expected float") }
            let v = t.elements(as: Float.self)
            guard v.allSatisfy(\.isFinite) else { throw TrainingError("\(file): parameter '\(p.name)' holds NaN or Inf; not writing it") }
            values[p.name] = p.toKeras(v)
        }
        return (kerasLayers(expected), values)
    }
}

import CONNX
import Foundation

extension Model {
    /// Loads an ONNX model file, with external data from its folder, and checks it (IR and opset versions
    /// Kizuki knows, tensor sizes, unique names, every node input produced, no cycles) unless `validate` is false.
    public init(contentsOf url: URL, validate: Bool = true) throws {
        let data = try readFile(url, what: "ONNX model")
        try self.init(serialized: data, file: url.path, baseDirectory: url.deletingLastPathComponent(), validate: validate)
    }

    /// Decodes a serialized ModelProto. `file` names the source in errors; external data is read
    /// relative to `baseDirectory` (refused when nil).
    public init(serialized data: Data, file: String = "<memory>", baseDirectory: URL? = nil, validate: Bool = true) throws {
        let context = DecodeContext(file: file, baseDirectory: baseDirectory)
        self = try data.withUnsafeBytes { bytes in
            try withUnpacked(bytes, file: file, what: "ONNX model", descriptor: Descriptors.model, unpack: onnx__model_proto__unpack,
                             free: onnx__model_proto__free_unpacked) { try context.model($0) }
        }
        if data.count > 0 && graph.nodes.isEmpty && graph.inputs.isEmpty && graph.outputs.isEmpty && opsetImports.isEmpty {
            // protobuf accepts many random byte strings as a message of unknown fields only.
            throw OnnxError(.malformed, file: file, "not an ONNX model: no graph, inputs, outputs or opset imports")
        }
        if validate {
            try checkVersions(file: file)
            try GraphValidator(file: file).check(graph)
        }
    }

    /// The model as ModelProto bytes; initializers are stored inline.
    public func serialized() throws -> Data {
        var encoder = Encoder()
        return try Self.pack(encoder.model(self))
    }

    /// Writes the model. With `externalData`, initializers of at least its threshold go to that
    /// file beside the model (replaced if present).
    public func save(to url: URL, externalData: ExternalDataPolicy? = nil) throws {
        var encoder = Encoder()
        encoder.policy = externalData
        let bytes = try Self.pack(encoder.model(self))
        do {
            if let policy = externalData {
                let dataURL = url.deletingLastPathComponent().appendingPathComponent(policy.fileName)
                try encoder.externalData.write(to: dataURL, options: .atomic)
            }
            try bytes.write(to: url, options: .atomic)
        } catch {
            throw OnnxError(.io, file: url.path, "cannot write: \(error.localizedDescription)")
        }
    }

    static func pack(_ message: UnsafeMutablePointer<Onnx__ModelProto>) throws -> Data {
        let size = onnx__model_proto__get_packed_size(message)
        var out = Data(count: size)
        let written = out.withUnsafeMutableBytes { onnx__model_proto__pack(message, $0.bindMemory(to: UInt8.self).baseAddress) }
        guard written == size else { throw OnnxError(.io, file: "", "protobuf packing wrote \(written) of \(size) bytes") }
        return out
    }
}

extension Tensor {
    /// Reads a serialized TensorProto file (`.pb`, the ONNX backend test format).
    public init(protobufFile url: URL) throws {
        let data = try readFile(url, what: "TensorProto")
        try self.init(protobuf: data, file: url.path)
    }

    public init(protobuf data: Data, file: String = "<memory>") throws {
        let context = DecodeContext(file: file, baseDirectory: nil)
        self = try data.withUnsafeBytes { bytes in
            try withUnpacked(bytes, file: file, what: "TensorProto", descriptor: Descriptors.tensor, unpack: onnx__tensor_proto__unpack,
                             free: onnx__tensor_proto__free_unpacked) { try context.tensor($0, owner: "file") }
        }
    }

    /// The tensor as TensorProto bytes.
    public func protobufData() throws -> Data {
        var encoder = Encoder()
        let message = try encoder.tensor(self, allowExternal: false)
        let size = onnx__tensor_proto__get_packed_size(message)
        var out = Data(count: size)
        _ = out.withUnsafeMutableBytes { onnx__tensor_proto__pack(message, $0.bindMemory(to: UInt8.self).baseAddress) }
        return out
    }
}

import CONNX
import Foundation

// Conversion of protobuf-c's unpacked C structs into Kizuki's Swift values.
// Everything is copied out, so the C message can be freed right after.

/// Caps what protobuf-c may allocate while unpacking one buffer, so a corrupt length field or
/// a tiny file of nested empty messages cannot make it allocate without bound.
final class BoundedAllocator {
    var used = 0
    let limit: Int
    var exceeded = false
    var raw = ProtobufCAllocator()

    init(inputSize: Int) {
        // Real models need about 1-2x their size; nested empty messages cost ~200 bytes each.
        limit = max(64 << 20, inputSize.multipliedReportingOverflow(by: 256).overflow ? Int.max : inputSize * 256)
        raw.alloc = { data, size in
            let me = Unmanaged<BoundedAllocator>.fromOpaque(data!).takeUnretainedValue()
            if size > me.limit - me.used { me.exceeded = true; return nil }
            me.used += size
            return malloc(max(size, 1))
        }
        raw.free = { _, pointer in free(pointer) }
        raw.allocator_data = Unmanaged.passUnretained(self).toOpaque()
    }
}

/// Unpacks `bytes` with protobuf-c's `unpack` for one message type (`descriptor`), converts it, frees it.
/// The nesting is checked first: protobuf-c's recursion would overflow the stack on a deep file.
func withUnpacked<M, R>(
    _ bytes: UnsafeRawBufferPointer, file: String, what: String, descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
    unpack: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<M>?,
    free freeMessage: (UnsafeMutablePointer<M>?, UnsafeMutablePointer<ProtobufCAllocator>?) -> Void,
    _ body: (UnsafeMutablePointer<M>) throws -> R
) throws -> R {
    try NestingLimit.check(bytes, as: descriptor, file: file, what: what)
    let allocator = BoundedAllocator(inputSize: bytes.count)
    let empty: [UInt8] = [0]
    let message: UnsafeMutablePointer<M>? = try withUnsafeMutablePointer(to: &allocator.raw) { alloc in
        if bytes.count == 0 {
            return empty.withUnsafeBufferPointer { unpack(alloc, 0, $0.baseAddress!) }
        }
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            throw OnnxError(.malformed, file: file, "no data")
        }
        return unpack(alloc, bytes.count, base)
    }
    guard let message else {
        if allocator.exceeded {
            throw OnnxError(.tooLarge, file: file,
                            "\(what) would need more than \(allocator.limit >> 20) MiB to decode; the file is corrupt")
        }
        throw OnnxError(.malformed, file: file, "not a valid \(what) (protobuf decoding failed: truncated or corrupt)")
    }
    defer { withUnsafeMutablePointer(to: &allocator.raw) { freeMessage(message, $0) } }
    return try body(message)
}

/// State shared while decoding one model: where it came from, for errors and external data.
struct DecodeContext {
    var file: String
    /// Folder that external data locations are relative to; nil refuses external data.
    var baseDirectory: URL?
}

@inline(__always) func str(_ p: UnsafeMutablePointer<CChar>?) -> String {
    p.map { String(cString: $0) } ?? ""
}

@inline(__always) func array<T>(_ n: Int, _ p: UnsafeMutablePointer<T>?) -> [T] {
    guard n > 0, let p else { return [] }
    return Array(UnsafeBufferPointer(start: p, count: n))
}

func messages<T, U>(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?,
                    _ convert: (UnsafeMutablePointer<T>) throws -> U) rethrows -> [U] {
    guard n > 0, let p else { return [] }
    var out: [U] = []
    out.reserveCapacity(n)
    for i in 0..<n { if let m = p[i] { out.append(try convert(m)) } }
    return out
}

func strings(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> [String] {
    guard n > 0, let p else { return [] }
    return (0..<n).map { str(p[$0]) }
}

func binary(_ b: ProtobufCBinaryData) -> Data {
    b.len == 0 || b.data == nil ? Data() : Data(bytes: b.data, count: b.len)
}

func unknownFields<T>(_ m: UnsafeMutablePointer<T>) -> [UnknownField] {
    let base = UnsafeMutableRawPointer(m).assumingMemoryBound(to: ProtobufCMessage.self).pointee
    guard base.n_unknown_fields > 0, let fields = base.unknown_fields else { return [] }
    return (0..<Int(base.n_unknown_fields)).map { i in
        let f = fields[i]
        return UnknownField(tag: f.tag, wireType: f.wire_type.rawValue,
                            bytes: f.len == 0 ? Data() : Data(bytes: f.data, count: f.len))
    }
}

/// Packs a sub-message back to bytes, to keep a message Kizuki does not model.
func opaque<T>(_ kind: OpaqueMessage.Kind, _ m: UnsafeMutablePointer<T>) -> OpaqueMessage {
    let message = UnsafeMutableRawPointer(m).assumingMemoryBound(to: ProtobufCMessage.self)
    let size = protobuf_c_message_get_packed_size(message)
    var bytes = Data(count: size)
    bytes.withUnsafeMutableBytes { _ = protobuf_c_message_pack(message, $0.bindMemory(to: UInt8.self).baseAddress) }
    return OpaqueMessage(kind: kind, bytes: bytes)
}

func pairs(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<Onnx__StringStringEntryProto>?>?) -> [StringPair] {
    messages(n, p) { StringPair(str($0.pointee.key), str($0.pointee.value)) }
}

extension DecodeContext {
    func model(_ m: UnsafeMutablePointer<Onnx__ModelProto>) throws -> Model {
        let p = m.pointee
        var model = Model()
        model.irVersion = p.ir_version
        model.opsetImports = messages(p.n_opset_import, p.opset_import) {
            OpsetID(domain: str($0.pointee.domain), version: $0.pointee.version)
        }
        model.producerName = str(p.producer_name)
        model.producerVersion = str(p.producer_version)
        model.domain = str(p.domain)
        model.modelVersion = p.model_version
        model.docString = str(p.doc_string)
        if let g = p.graph { model.graph = try graph(g) }
        model.metadataProps = pairs(p.n_metadata_props, p.metadata_props)
        model.trainingInfo = messages(p.n_training_info, p.training_info) { opaque(.trainingInfo, $0) }
        model.functions = messages(p.n_functions, p.functions) { opaque(.function, $0) }
        model.unknownFields = unknownFields(m)
        return model
    }

    func graph(_ g: UnsafeMutablePointer<Onnx__GraphProto>) throws -> Graph {
        let p = g.pointee
        var graph = Graph()
        graph.name = str(p.name)
        graph.nodes = try messages(p.n_node, p.node) { try node($0) }
        graph.initializers = try messages(p.n_initializer, p.initializer) { try tensor($0, owner: "initializer") }
        graph.sparseInitializers = messages(p.n_sparse_initializer, p.sparse_initializer) { opaque(.sparseTensor, $0) }
        graph.inputs = messages(p.n_input, p.input) { valueInfo($0) }
        graph.outputs = messages(p.n_output, p.output) { valueInfo($0) }
        graph.valueInfo = messages(p.n_value_info, p.value_info) { valueInfo($0) }
        graph.quantizationAnnotations = messages(p.n_quantization_annotation, p.quantization_annotation) {
            opaque(.tensorAnnotation, $0)
        }
        graph.docString = str(p.doc_string)
        graph.metadataProps = pairs(p.n_metadata_props, p.metadata_props)
        graph.unknownFields = unknownFields(g)
        return graph
    }

    func node(_ n: UnsafeMutablePointer<Onnx__NodeProto>) throws -> Node {
        let p = n.pointee
        var node = Node(name: str(p.name), opType: str(p.op_type), domain: str(p.domain),
                        inputs: strings(p.n_input, p.input), outputs: strings(p.n_output, p.output))
        node.overload = str(p.overload)
        node.attributes = try messages(p.n_attribute, p.attribute) { try attribute($0, node: node) }
        node.docString = str(p.doc_string)
        node.metadataProps = pairs(p.n_metadata_props, p.metadata_props)
        node.unknownFields = unknownFields(n)
        return node
    }

    func attribute(_ a: UnsafeMutablePointer<Onnx__AttributeProto>, node: Node) throws -> Attribute {
        let p = a.pointee
        let name = str(p.name)
        let owner = "attribute '\(name)' of node \(node.label)"
        let value: AttributeValue
        switch p.type {
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: value = .float(p.f)
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: value = .int(p.i)
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: value = .string(binary(p.s))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
            guard let t = p.t else { throw OnnxError(.malformed, file: file, "\(owner) is a TENSOR without a value") }
            value = .tensor(try tensor(t, owner: owner))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH:
            guard let g = p.g else { throw OnnxError(.malformed, file: file, "\(owner) is a GRAPH without a value") }
            value = .graph(try graph(g))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR:
            guard let s = p.sparse_tensor else {
                throw OnnxError(.malformed, file: file, "\(owner) is a SPARSE_TENSOR without a value")
            }
            value = .sparseTensor(opaque(.sparseTensor, s))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO:
            guard let t = p.tp else { throw OnnxError(.malformed, file: file, "\(owner) is a TYPE_PROTO without a value") }
            value = .typeProto(opaque(.typeProto, t))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS: value = .floats(array(p.n_floats, p.floats))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: value = .ints(array(p.n_ints, p.ints))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS: value = .strings(array(p.n_strings, p.strings).map(binary))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS:
            value = .tensors(try messages(p.n_tensors, p.tensors) { try tensor($0, owner: owner) })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS: value = .graphs(try messages(p.n_graphs, p.graphs) { try graph($0) })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS:
            value = .sparseTensors(messages(p.n_sparse_tensors, p.sparse_tensors) { opaque(.sparseTensor, $0) })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS:
            value = .typeProtos(messages(p.n_type_protos, p.type_protos) { opaque(.typeProto, $0) })
        default:
            value = .undefined
        }
        var attribute = Attribute(name: name, value: value)
        attribute.refAttrName = str(p.ref_attr_name)
        attribute.docString = str(p.doc_string)
        attribute.unknownFields = unknownFields(a)
        return attribute
    }

    func valueInfo(_ v: UnsafeMutablePointer<Onnx__ValueInfoProto>) -> ValueInfo {
        let p = v.pointee
        var info = ValueInfo(name: str(p.name), type: p.type.map(valueType))
        info.docString = str(p.doc_string)
        info.metadataProps = pairs(p.n_metadata_props, p.metadata_props)
        return info
    }

    func valueType(_ t: UnsafeMutablePointer<Onnx__TypeProto>) -> ValueType {
        let p = t.pointee
        guard p.value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, let tensor = p.tensor_type else {
            return .other(opaque(.typeProto, t))
        }
        let elementType = DataType(rawValue: tensor.pointee.elem_type)
        var dims: [ShapeDim]? = nil
        var denotations: [String] = []
        if let shape = tensor.pointee.shape {
            dims = messages(shape.pointee.n_dim, shape.pointee.dim) { d in
                denotations.append(str(d.pointee.denotation))
                switch d.pointee.value_case {
                case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE: return .known(Int(d.pointee.dim_value))
                case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM: return .symbol(str(d.pointee.dim_param))
                default: return .unknown
                }
            }
        }
        if denotations.allSatisfy(\.isEmpty) { denotations = [] }
        return .tensor(elementType: elementType, shape: dims, denotation: str(p.denotation), dimDenotations: denotations)
    }

    /// Converts a TensorProto, reading external data, and checks that the data agrees with the dims.
    func tensor(_ t: UnsafeMutablePointer<Onnx__TensorProto>, owner: String) throws -> Tensor {
        let p = t.pointee
        let name = str(p.name)
        let what = name.isEmpty ? "tensor in \(owner)" : "tensor '\(name)'"
        let type = DataType(rawValue: p.data_type)
        let rawDims = array(p.n_dims, p.dims)
        if let bad = rawDims.first(where: { $0 < 0 }) {
            throw OnnxError(.invalidTensor, file: file, "\(what) has a negative dimension \(bad) in dims \(rawDims)")
        }
        var count = 1
        for d in rawDims {
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow, product <= 1 << 40 else {
                throw OnnxError(.invalidTensor, file: file, "\(what) has implausibly large dims \(rawDims)")
            }
            count = product
        }
        var tensor = Tensor(name: name, dataType: type, dims: rawDims.map(Int.init))
        tensor.docString = str(p.doc_string)
        tensor.metadataProps = pairs(p.n_metadata_props, p.metadata_props)
        tensor.unknownFields = unknownFields(t)

        if p.has_data_location != 0 && p.data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL {
            let entries = pairs(p.n_external_data, p.external_data)
            let (data, location) = try readExternal(entries, what: what, expectedBytes: type.byteCount(elements: count))
            tensor.data = data
            tensor.externalLocation = location
        } else if type == .string {
            tensor.strings = array(p.n_string_data, p.string_data).map(binary)
            guard tensor.strings.count == count else {
                throw OnnxError(.invalidTensor, file: file,
                                "\(what) has \(tensor.strings.count) strings but dims \(rawDims) need \(count)")
            }
            return tensor
        } else if p.has_raw_data != 0 {
            tensor.data = binary(p.raw_data)
        } else {
            tensor.data = try typedData(p, type: type, what: what, count: count)
        }
        guard let expected = type.byteCount(elements: count) else {
            return tensor  // an element type Kizuki does not size: keep the bytes as they are
        }
        guard tensor.data.count == expected else {
            throw OnnxError(.invalidTensor, file: file,
                            "\(what) (\(type), dims \(rawDims)) has \(tensor.data.count) bytes of data but needs \(expected)")
        }
        return tensor
    }

    /// The typed repeated fields, rewritten as little-endian packed bytes.
    private func typedData(_ p: Onnx__TensorProto, type: DataType, what: String, count: Int) throws -> Data {
        func check(_ n: Int, per: Int = 1, _ field: String) throws {
            // Zero values in every field is how an empty tensor, or one with no data at all, looks.
            guard n == count * per || n == 0 && count == 0 else {
                throw OnnxError(.invalidTensor, file: file, "\(what) has \(n) values in \(field) but its dims need \(count * per)")
            }
        }
        func pack<T>(_ values: [T]) -> Data { values.withUnsafeBufferPointer { Data(buffer: $0) } }
        switch type.rawValue {
        case 1:
            try check(p.n_float_data, "float_data"); return pack(array(p.n_float_data, p.float_data))
        case 14:
            try check(p.n_float_data, per: 2, "float_data"); return pack(array(p.n_float_data, p.float_data))
        case 11:
            try check(p.n_double_data, "double_data"); return pack(array(p.n_double_data, p.double_data))
        case 15:
            try check(p.n_double_data, per: 2, "double_data"); return pack(array(p.n_double_data, p.double_data))
        case 7:
            try check(p.n_int64_data, "int64_data"); return pack(array(p.n_int64_data, p.int64_data))
        case 13:
            try check(p.n_uint64_data, "uint64_data"); return pack(array(p.n_uint64_data, p.uint64_data))
        case 12:
            try check(p.n_uint64_data, "uint64_data"); return pack(array(p.n_uint64_data, p.uint64_data).map { UInt32(truncatingIfNeeded: $0) })
        case 6:
            try check(p.n_int32_data, "int32_data"); return pack(array(p.n_int32_data, p.int32_data))
        case 4, 5, 10, 16:
            try check(p.n_int32_data, "int32_data"); return pack(array(p.n_int32_data, p.int32_data).map { UInt16(truncatingIfNeeded: $0) })
        case 2, 3, 9, 17, 18, 19, 20, 24:
            try check(p.n_int32_data, "int32_data"); return pack(array(p.n_int32_data, p.int32_data).map { UInt8(truncatingIfNeeded: $0) })
        case 21, 22, 23, 25, 26:
            // Sub-byte types: each int32 holds one byte of packed elements.
            let bytes = array(p.n_int32_data, p.int32_data).map { UInt8(truncatingIfNeeded: $0) }
            let expected = type.byteCount(elements: count) ?? 0
            guard bytes.count == expected else {
                throw OnnxError(.invalidTensor, file: file, "\(what) has \(bytes.count) packed bytes in int32_data but needs \(expected)")
            }
            return pack(bytes)
        default:
            return Data()
        }
    }

    /// Reads `location`/`offset`/`length` from a regular file inside the model's folder. The location
    /// is resolved (symlinks followed) and must stay inside the folder's own resolved path, so neither
    /// `..`, an absolute path nor a symlink can make a model disclose another file; FIFOs and devices
    /// are refused before any read could block. With `expectedBytes` (the tensor's size) known, a range
    /// of another length is refused before reading.
    private func readExternal(_ entries: [StringPair], what: String, expectedBytes: Int?) throws -> (Data, ExternalLocation) {
        var location: String?, offsetText: String?, lengthText: String?
        for entry in entries {
            switch entry.key {
            case "location": location = entry.value
            case "offset": offsetText = entry.value
            case "length": lengthText = entry.value
            default: break
            }
        }
        guard let location, !location.isEmpty else {
            throw OnnxError(.externalData, file: file, "\(what) is stored externally but names no location")
        }
        func refuse(_ why: String) -> OnnxError {
            OnnxError(.externalData, file: file, "\(what): external data '\(location)' \(why)")
        }
        func count(_ text: String?, _ key: String) throws -> Int? {
            guard let text else { return nil }
            guard let v = Int(text), v >= 0 else { throw refuse("has an invalid \(key) '\(text)'") }
            return v
        }
        let offset = try count(offsetText, "offset") ?? 0
        let length = try count(lengthText, "length")
        let parts = location.split(separator: "/", omittingEmptySubsequences: true)
        if location.hasPrefix("/") || location.hasPrefix("\\") || parts.contains("..") || location.contains(":") {
            throw refuse("lies outside the model's folder; refused")
        }
        guard let base = baseDirectory else { throw refuse("cannot be read: the model was loaded from memory") }
        guard let folder = resolvedPath(base.path) else { throw refuse("cannot be read: the model's folder \(base.path) cannot be resolved") }
        guard let resolved = resolvedPath(base.appendingPathComponent(location).path) else {
            throw errno == ENOENT ? refuse("is missing") : refuse("cannot be resolved: \(String(cString: strerror(errno)))")
        }
        guard resolved.hasPrefix(folder == "/" ? "/" : folder + "/") else {
            throw refuse("leads outside the model's folder (through a symbolic link); refused")
        }
        let source: RegularFile
        do { source = try RegularFile(path: resolved, what: "external data", followSymlinks: false) } catch let e as OnnxError {
            throw refuse(e.message)
        }
        let (end, overflow) = offset.addingReportingOverflow(length ?? 0)
        guard !overflow, end <= source.size else {
            throw refuse("has \(source.size) bytes, too short for offset \(offset)" + (length.map { " + length \($0)" } ?? ""))
        }
        let wanted = length ?? source.size - offset
        if let expectedBytes, wanted != expectedBytes {
            throw refuse("holds \(wanted) bytes from offset \(offset), but the tensor's type and dims need \(expectedBytes)")
        }
        let data: Data
        do { data = try source.read(offset: offset, count: wanted) } catch let e as OnnxError { throw refuse(e.message) }
        return (data, ExternalLocation(path: location, offset: offset, length: wanted))
    }
}

/// The absolute path with every symbolic link, `.` and `..` resolved (realpath(3)); nil when it does not exist.
func resolvedPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}

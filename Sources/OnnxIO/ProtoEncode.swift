import CONNX
import Foundation

// Conversion of Kizuki's Swift values into protobuf-c C structs for packing.
// Every C allocation goes through one arena, freed when the arena goes away.

final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []
    private var unpacked: [UnsafeMutablePointer<ProtobufCMessage>] = []

    deinit {
        for b in blocks { free(b) }
        for m in unpacked { protobuf_c_message_free_unpacked(m, nil) }
    }

    func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let raw = calloc(max(count, 1), MemoryLayout<T>.stride)!
        blocks.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// A message struct initialised by its generated `init` function (which sets the descriptor).
    func message<T>(_ initialise: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let m = allocate(T.self, count: 1)
        initialise(m)
        return m
    }

    func cString(_ s: String) -> UnsafeMutablePointer<CChar> {
        let utf8 = Array(s.utf8CString)
        let p = allocate(CChar.self, count: utf8.count)
        utf8.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: utf8.count) }
        return p
    }

    /// nil for "", so empty optional strings are not written.
    func optionalString(_ s: String) -> UnsafeMutablePointer<CChar>? { s.isEmpty ? nil : cString(s) }

    func copy<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        guard !values.isEmpty else { return nil }
        let p = allocate(T.self, count: values.count)
        values.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: values.count) }
        return p
    }

    func binary(_ data: Data) -> ProtobufCBinaryData {
        guard !data.isEmpty else { return ProtobufCBinaryData(len: 0, data: nil) }
        let p = allocate(UInt8.self, count: data.count)
        data.copyBytes(to: p, count: data.count)
        return ProtobufCBinaryData(len: data.count, data: p)
    }

    func strings(_ values: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
        copy(values.map { Optional(cString($0)) })
    }

    func pointers<T, U>(_ values: [T], _ make: (T) throws -> UnsafeMutablePointer<U>) rethrows
        -> UnsafeMutablePointer<UnsafeMutablePointer<U>?>? {
        try copy(values.map { Optional(try make($0)) })
    }

    func pairs(_ values: [StringPair]) -> UnsafeMutablePointer<UnsafeMutablePointer<Onnx__StringStringEntryProto>?>? {
        pointers(values) { pair in
            let e: UnsafeMutablePointer<Onnx__StringStringEntryProto> = message(onnx__string_string_entry_proto__init)
            e.pointee.key = cString(pair.key)
            e.pointee.value = cString(pair.value)
            return e
        }
    }

    func setUnknownFields<T>(_ m: UnsafeMutablePointer<T>, _ fields: [UnknownField]) {
        guard !fields.isEmpty else { return }
        let base = UnsafeMutableRawPointer(m).assumingMemoryBound(to: ProtobufCMessage.self)
        let out = allocate(ProtobufCMessageUnknownField.self, count: fields.count)
        for (i, f) in fields.enumerated() {
            let b = binary(f.bytes)
            out[i] = ProtobufCMessageUnknownField(tag: f.tag, wire_type: ProtobufCWireType(rawValue: f.wireType),
                                                   len: b.len, data: b.data)
        }
        base.pointee.n_unknown_fields = UInt32(fields.count)
        base.pointee.unknown_fields = out
    }

    /// Turns kept bytes back into a C message of the right type (freed with the arena).
    func restore<T>(_ opaque: OpaqueMessage, as type: T.Type) throws -> UnsafeMutablePointer<T> {
        let descriptor = Descriptors.of(opaque.kind)
        // Kept bytes can be built by hand (OpaqueMessage is public): bound their nesting like a file's.
        try opaque.bytes.withUnsafeBytes {
            try NestingLimit.check($0, as: descriptor, file: "", what: "kept \(opaque.kind.rawValue) message")
        }
        let message: UnsafeMutablePointer<ProtobufCMessage>? = opaque.bytes.withUnsafeBytes { raw in
            let empty: UInt8 = 0
            return withUnsafePointer(to: empty) { fallback in
                protobuf_c_message_unpack(descriptor, nil, raw.count,
                                          raw.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? fallback)
            }
        }
        guard let message else {
            throw OnnxError(.malformed, file: "", "kept \(opaque.kind.rawValue) message no longer decodes")
        }
        unpacked.append(message)
        return UnsafeMutableRawPointer(message).assumingMemoryBound(to: T.self)
    }
}

/// The generated descriptors, by address. A C `const` global cannot be passed by address from
/// Swift (`withUnsafePointer(to:)` would point at a temporary copy), so each is read from a message
/// its generated `init` set up.
enum Descriptors {
    static func read<T>(_ initialise: (UnsafeMutablePointer<T>) -> Void) -> UnsafePointer<ProtobufCMessageDescriptor> {
        let m = UnsafeMutablePointer<T>.allocate(capacity: 1)
        defer { m.deallocate() }
        initialise(m)
        return UnsafeRawPointer(m).assumingMemoryBound(to: ProtobufCMessage.self).pointee.descriptor
    }

    static let model = read(onnx__model_proto__init)
    static let graph = read(onnx__graph_proto__init)
    static let tensor = read(onnx__tensor_proto__init)
    static let function = read(onnx__function_proto__init)
    static let trainingInfo = read(onnx__training_info_proto__init)
    static let sparseTensor = read(onnx__sparse_tensor_proto__init)
    static let typeProto = read(onnx__type_proto__init)
    static let tensorAnnotation = read(onnx__tensor_annotation__init)

    static func of(_ kind: OpaqueMessage.Kind) -> UnsafePointer<ProtobufCMessageDescriptor> {
        switch kind {
        case .function: return function
        case .trainingInfo: return trainingInfo
        case .sparseTensor: return sparseTensor
        case .typeProto: return typeProto
        case .tensorAnnotation: return tensorAnnotation
        }
    }
}

/// How `save` stores large initializers.
public struct ExternalDataPolicy: Sendable {
    /// Initializers with at least this many bytes of data go to the external file.
    public var thresholdBytes: Int
    /// File name, relative to the model's folder.
    public var fileName: String
    public init(thresholdBytes: Int = 1024, fileName: String) {
        self.thresholdBytes = thresholdBytes
        self.fileName = fileName
    }
}

/// Builds C structs for one model. External data, when asked for, is appended to `externalData`.
struct Encoder {
    let arena = CArena()
    var policy: ExternalDataPolicy?
    var externalData = Data()

    mutating func model(_ model: Model) throws -> UnsafeMutablePointer<Onnx__ModelProto> {
        let m: UnsafeMutablePointer<Onnx__ModelProto> = arena.message(onnx__model_proto__init)
        m.pointee.has_ir_version = 1
        m.pointee.ir_version = model.irVersion
        m.pointee.n_opset_import = model.opsetImports.count
        m.pointee.opset_import = arena.pointers(model.opsetImports) { o in
            let p: UnsafeMutablePointer<Onnx__OperatorSetIdProto> = arena.message(onnx__operator_set_id_proto__init)
            p.pointee.domain = arena.cString(o.domain)
            p.pointee.has_version = 1
            p.pointee.version = o.version
            return p
        }
        m.pointee.producer_name = arena.optionalString(model.producerName)
        m.pointee.producer_version = arena.optionalString(model.producerVersion)
        m.pointee.domain = arena.optionalString(model.domain)
        if model.modelVersion != 0 { m.pointee.has_model_version = 1; m.pointee.model_version = model.modelVersion }
        m.pointee.doc_string = arena.optionalString(model.docString)
        m.pointee.graph = try graph(model.graph)
        m.pointee.n_metadata_props = model.metadataProps.count
        m.pointee.metadata_props = arena.pairs(model.metadataProps)
        m.pointee.n_training_info = model.trainingInfo.count
        m.pointee.training_info = try arena.pointers(model.trainingInfo) { try arena.restore($0, as: Onnx__TrainingInfoProto.self) }
        m.pointee.n_functions = model.functions.count
        m.pointee.functions = try arena.pointers(model.functions) { try arena.restore($0, as: Onnx__FunctionProto.self) }
        arena.setUnknownFields(m, model.unknownFields)
        return m
    }

    mutating func graph(_ graph: Graph) throws -> UnsafeMutablePointer<Onnx__GraphProto> {
        let g: UnsafeMutablePointer<Onnx__GraphProto> = arena.message(onnx__graph_proto__init)
        g.pointee.name = arena.optionalString(graph.name)
        g.pointee.n_node = graph.nodes.count
        g.pointee.node = try arena.copy(graph.nodes.map { Optional(try node($0)) })
        g.pointee.n_initializer = graph.initializers.count
        g.pointee.initializer = try arena.copy(graph.initializers.map { Optional(try tensor($0, allowExternal: true)) })
        g.pointee.n_sparse_initializer = graph.sparseInitializers.count
        g.pointee.sparse_initializer = try arena.pointers(graph.sparseInitializers) { try arena.restore($0, as: Onnx__SparseTensorProto.self) }
        g.pointee.doc_string = arena.optionalString(graph.docString)
        g.pointee.n_input = graph.inputs.count
        g.pointee.input = try arena.pointers(graph.inputs, valueInfo)
        g.pointee.n_output = graph.outputs.count
        g.pointee.output = try arena.pointers(graph.outputs, valueInfo)
        g.pointee.n_value_info = graph.valueInfo.count
        g.pointee.value_info = try arena.pointers(graph.valueInfo, valueInfo)
        g.pointee.n_quantization_annotation = graph.quantizationAnnotations.count
        g.pointee.quantization_annotation = try arena.pointers(graph.quantizationAnnotations) {
            try arena.restore($0, as: Onnx__TensorAnnotation.self)
        }
        g.pointee.n_metadata_props = graph.metadataProps.count
        g.pointee.metadata_props = arena.pairs(graph.metadataProps)
        arena.setUnknownFields(g, graph.unknownFields)
        return g
    }

    mutating func node(_ node: Node) throws -> UnsafeMutablePointer<Onnx__NodeProto> {
        let n: UnsafeMutablePointer<Onnx__NodeProto> = arena.message(onnx__node_proto__init)
        n.pointee.n_input = node.inputs.count
        n.pointee.input = arena.strings(node.inputs)
        n.pointee.n_output = node.outputs.count
        n.pointee.output = arena.strings(node.outputs)
        n.pointee.name = arena.optionalString(node.name)
        n.pointee.op_type = arena.cString(node.opType)
        n.pointee.domain = arena.optionalString(node.domain)
        n.pointee.overload = arena.optionalString(node.overload)
        n.pointee.n_attribute = node.attributes.count
        n.pointee.attribute = try arena.copy(node.attributes.map { Optional(try attribute($0)) })
        n.pointee.doc_string = arena.optionalString(node.docString)
        n.pointee.n_metadata_props = node.metadataProps.count
        n.pointee.metadata_props = arena.pairs(node.metadataProps)
        arena.setUnknownFields(n, node.unknownFields)
        return n
    }

    mutating func attribute(_ attribute: Attribute) throws -> UnsafeMutablePointer<Onnx__AttributeProto> {
        let a: UnsafeMutablePointer<Onnx__AttributeProto> = arena.message(onnx__attribute_proto__init)
        a.pointee.name = arena.cString(attribute.name)
        a.pointee.ref_attr_name = arena.optionalString(attribute.refAttrName)
        a.pointee.doc_string = arena.optionalString(attribute.docString)
        a.pointee.has_type = 1
        switch attribute.value {
        case .undefined:
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED
        case .float(let f):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT; a.pointee.has_f = 1; a.pointee.f = f
        case .int(let i):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT; a.pointee.has_i = 1; a.pointee.i = i
        case .string(let s):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING; a.pointee.has_s = 1; a.pointee.s = arena.binary(s)
        case .tensor(let t):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR; a.pointee.t = try tensor(t, allowExternal: false)
        case .graph(let g):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH; a.pointee.g = try graph(g)
        case .sparseTensor(let s):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR
            a.pointee.sparse_tensor = try arena.restore(s, as: Onnx__SparseTensorProto.self)
        case .typeProto(let t):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO
            a.pointee.tp = try arena.restore(t, as: Onnx__TypeProto.self)
        case .floats(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS; a.pointee.n_floats = v.count; a.pointee.floats = arena.copy(v)
        case .ints(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS; a.pointee.n_ints = v.count; a.pointee.ints = arena.copy(v)
        case .strings(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS
            a.pointee.n_strings = v.count; a.pointee.strings = arena.copy(v.map(arena.binary))
        case .tensors(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS
            a.pointee.n_tensors = v.count
            a.pointee.tensors = try arena.copy(v.map { Optional(try tensor($0, allowExternal: false)) })
        case .graphs(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS
            a.pointee.n_graphs = v.count
            a.pointee.graphs = try arena.copy(v.map { Optional(try graph($0)) })
        case .sparseTensors(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS
            a.pointee.n_sparse_tensors = v.count
            a.pointee.sparse_tensors = try arena.pointers(v) { try arena.restore($0, as: Onnx__SparseTensorProto.self) }
        case .typeProtos(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS
            a.pointee.n_type_protos = v.count
            a.pointee.type_protos = try arena.pointers(v) { try arena.restore($0, as: Onnx__TypeProto.self) }
        }
        arena.setUnknownFields(a, attribute.unknownFields)
        return a
    }

    func valueInfo(_ info: ValueInfo) throws -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        let v: UnsafeMutablePointer<Onnx__ValueInfoProto> = arena.message(onnx__value_info_proto__init)
        v.pointee.name = arena.cString(info.name)
        v.pointee.doc_string = arena.optionalString(info.docString)
        v.pointee.n_metadata_props = info.metadataProps.count
        v.pointee.metadata_props = arena.pairs(info.metadataProps)
        if let type = info.type { v.pointee.type = try valueType(type) }
        return v
    }

    func valueType(_ type: ValueType) throws -> UnsafeMutablePointer<Onnx__TypeProto> {
        switch type {
        case .other(let opaque):
            return try arena.restore(opaque, as: Onnx__TypeProto.self)
        case .tensor(let elementType, let shape, let denotation, let dimDenotations):
            let t: UnsafeMutablePointer<Onnx__TypeProto> = arena.message(onnx__type_proto__init)
            let tensor: UnsafeMutablePointer<Onnx__TypeProto__Tensor> = arena.message(onnx__type_proto__tensor__init)
            tensor.pointee.has_elem_type = 1
            tensor.pointee.elem_type = elementType.rawValue
            if let shape {
                let s: UnsafeMutablePointer<Onnx__TensorShapeProto> = arena.message(onnx__tensor_shape_proto__init)
                s.pointee.n_dim = shape.count
                s.pointee.dim = arena.pointers(Array(shape.enumerated())) { i, dim in
                    let d: UnsafeMutablePointer<Onnx__TensorShapeProto__Dimension> = arena.message(onnx__tensor_shape_proto__dimension__init)
                    switch dim {
                    case .known(let n):
                        d.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                        d.pointee.dim_value = Int64(n)
                    case .symbol(let name):
                        d.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                        d.pointee.dim_param = arena.cString(name)
                    case .unknown: break
                    }
                    if i < dimDenotations.count { d.pointee.denotation = arena.optionalString(dimDenotations[i]) }
                    return d
                }
                tensor.pointee.shape = s
            }
            t.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
            t.pointee.tensor_type = tensor
            t.pointee.denotation = arena.optionalString(denotation)
            return t
        }
    }

    /// Numeric data is always written as `raw_data` (or to the external file); strings as `string_data`.
    mutating func tensor(_ tensor: Tensor, allowExternal: Bool) throws -> UnsafeMutablePointer<Onnx__TensorProto> {
        let t: UnsafeMutablePointer<Onnx__TensorProto> = arena.message(onnx__tensor_proto__init)
        t.pointee.n_dims = tensor.dims.count
        t.pointee.dims = arena.copy(tensor.dims.map(Int64.init))
        t.pointee.has_data_type = 1
        t.pointee.data_type = tensor.dataType.rawValue
        t.pointee.name = arena.optionalString(tensor.name)
        t.pointee.doc_string = arena.optionalString(tensor.docString)
        t.pointee.n_metadata_props = tensor.metadataProps.count
        t.pointee.metadata_props = arena.pairs(tensor.metadataProps)
        if tensor.dataType == .string {
            t.pointee.n_string_data = tensor.strings.count
            t.pointee.string_data = arena.copy(tensor.strings.map(arena.binary))
        } else if allowExternal, let policy, tensor.data.count >= policy.thresholdBytes, !tensor.name.isEmpty {
            // Align each tensor to 64 bytes so readers may map the file directly.
            let padding = (64 - externalData.count % 64) % 64
            externalData.append(Data(count: padding))
            let offset = externalData.count
            externalData.append(tensor.data)
            let entries = [StringPair("location", policy.fileName), StringPair("offset", String(offset)),
                           StringPair("length", String(tensor.data.count))]
            t.pointee.n_external_data = entries.count
            t.pointee.external_data = arena.pairs(entries)
            t.pointee.has_data_location = 1
            t.pointee.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL
        } else {
            t.pointee.has_raw_data = 1
            t.pointee.raw_data = arena.binary(tensor.data)
        }
        arena.setUnknownFields(t, tensor.unknownFields)
        return t
    }
}

import Foundation

/// A key/value pair (StringStringEntryProto).
public struct StringPair: Hashable, Sendable {
    public var key: String
    public var value: String
    public init(_ key: String, _ value: String) { self.key = key; self.value = value }
}

/// A field the schema does not know, kept byte for byte so it survives load → save.
public struct UnknownField: Hashable, Sendable {
    public var tag: UInt32
    public var wireType: UInt32
    public var bytes: Data
}

/// A message Kizuki does not model (functions, training info, sparse tensors, non-tensor
/// types, quantisation annotations): kept as its serialized bytes so it survives load → save.
public struct OpaqueMessage: Hashable, Sendable {
    public enum Kind: String, Sendable { case function, trainingInfo, sparseTensor, typeProto, tensorAnnotation }
    public var kind: Kind
    public var bytes: Data
}

/// An operator set a model imports, e.g. ("", 13) for the default ONNX domain at version 13.
public struct OpsetID: Hashable, Sendable {
    public var domain: String
    public var version: Int64
    public init(domain: String, version: Int64) { self.domain = domain; self.version = version }
}

/// One dimension of a tensor type: a number, a symbolic name, or not given.
public enum ShapeDim: Hashable, Sendable, CustomStringConvertible {
    case known(Int)
    case symbol(String)
    case unknown

    public var description: String {
        switch self {
        case .known(let n): return String(n)
        case .symbol(let s): return s
        case .unknown: return "?"
        }
    }

    /// The size every value must have on this axis, or nil when it is free. Exporters write a free
    /// axis in several ways (no value, `dim_value: -1`, `dim_param: "?"` or ""), each meaning "unknown".
    public var fixedSize: Int? {
        if case .known(let n) = self, n >= 0 { return n }
        return nil
    }

    /// The name that ties this axis to same-named axes of other values, or nil when the axis is free
    /// and unnamed: "?" and "" are placeholders, not names (PaddleOCR declares `[-1,3,?,?]`).
    public var symbolName: String? {
        if case .symbol(let s) = self, !s.isEmpty, s != "?" { return s }
        return nil
    }
}

/// The type of a value: a tensor (element type and optional shape), or any other ONNX type kept opaque.
public enum ValueType: Hashable, Sendable {
    /// `shape` is nil when the rank itself is unknown. `dimDenotations` keeps per-dimension denotations.
    case tensor(elementType: DataType, shape: [ShapeDim]?, denotation: String, dimDenotations: [String])
    case other(OpaqueMessage)

    public static func tensor(_ elementType: DataType, _ shape: [ShapeDim]?) -> ValueType {
        .tensor(elementType: elementType, shape: shape, denotation: "", dimDenotations: [])
    }

    public var elementType: DataType? {
        if case .tensor(let t, _, _, _) = self { return t }
        return nil
    }

    public var shape: [ShapeDim]? {
        if case .tensor(_, let s, _, _) = self { return s }
        return nil
    }
}

public struct ValueInfo: Hashable, Sendable {
    public var name: String
    public var type: ValueType?
    public var docString: String = ""
    public var metadataProps: [StringPair] = []
    public init(name: String, type: ValueType?) { self.name = name; self.type = type }
}

public enum AttributeValue: Equatable, Sendable {
    case undefined
    case float(Float)
    case int(Int64)
    case string(Data)
    case tensor(Tensor)
    case graph(Graph)
    case sparseTensor(OpaqueMessage)
    case typeProto(OpaqueMessage)
    case floats([Float])
    case ints([Int64])
    case strings([Data])
    case tensors([Tensor])
    case graphs([Graph])
    case sparseTensors([OpaqueMessage])
    case typeProtos([OpaqueMessage])
}

public struct Attribute: Equatable, Sendable {
    public var name: String
    public var value: AttributeValue
    public var refAttrName: String = ""
    public var docString: String = ""
    public var unknownFields: [UnknownField] = []
    public init(name: String, value: AttributeValue) { self.name = name; self.value = value }
}

public struct Node: Equatable, Sendable {
    public var name: String
    public var opType: String
    public var domain: String = ""
    public var overload: String = ""
    /// Value names; "" marks an omitted optional input or output.
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [Attribute] = []
    public var docString: String = ""
    public var metadataProps: [StringPair] = []
    public var unknownFields: [UnknownField] = []

    public init(name: String = "", opType: String, domain: String = "", inputs: [String], outputs: [String],
                attributes: [Attribute] = []) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }

    public func attribute(_ name: String) -> AttributeValue? {
        attributes.first { $0.name == name }?.value
    }

    /// A short label for messages: the node's name, or its op type and first output.
    public var label: String {
        name.isEmpty ? "\(opType) node producing '\(outputs.first ?? "")'" : "'\(name)' (\(opType))"
    }
}

public struct Graph: Equatable, Sendable {
    public var name: String = ""
    public var nodes: [Node] = []
    public var initializers: [Tensor] = []
    public var sparseInitializers: [OpaqueMessage] = []
    public var inputs: [ValueInfo] = []
    public var outputs: [ValueInfo] = []
    public var valueInfo: [ValueInfo] = []
    public var quantizationAnnotations: [OpaqueMessage] = []
    public var docString: String = ""
    public var metadataProps: [StringPair] = []
    public var unknownFields: [UnknownField] = []
    public init() {}
}

public struct Model: Equatable, Sendable {
    public var irVersion: Int64 = 8
    public var opsetImports: [OpsetID] = []
    public var producerName: String = ""
    public var producerVersion: String = ""
    public var domain: String = ""
    public var modelVersion: Int64 = 0
    public var docString: String = ""
    public var graph = Graph()
    public var metadataProps: [StringPair] = []
    public var trainingInfo: [OpaqueMessage] = []
    public var functions: [OpaqueMessage] = []
    public var unknownFields: [UnknownField] = []
    public init() {}

    /// The opset version imported for a domain ("" and "ai.onnx" are the default domain).
    public func opsetVersion(domain: String = "") -> Int64? {
        let wanted = domain == "ai.onnx" ? "" : domain
        return opsetImports.first { ($0.domain == "ai.onnx" ? "" : $0.domain) == wanted }?.version
    }
}

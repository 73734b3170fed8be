import Foundation

/// ONNX element types (TensorProto.DataType). Unknown codes are kept, so a model using a
/// type Kizuki does not know still loads and saves unchanged.
public struct DataType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let undefined = DataType(rawValue: 0)
    public static let float = DataType(rawValue: 1)
    public static let uint8 = DataType(rawValue: 2)
    public static let int8 = DataType(rawValue: 3)
    public static let uint16 = DataType(rawValue: 4)
    public static let int16 = DataType(rawValue: 5)
    public static let int32 = DataType(rawValue: 6)
    public static let int64 = DataType(rawValue: 7)
    public static let string = DataType(rawValue: 8)
    public static let bool = DataType(rawValue: 9)
    public static let float16 = DataType(rawValue: 10)
    public static let double = DataType(rawValue: 11)
    public static let uint32 = DataType(rawValue: 12)
    public static let uint64 = DataType(rawValue: 13)
    public static let complex64 = DataType(rawValue: 14)
    public static let complex128 = DataType(rawValue: 15)
    public static let bfloat16 = DataType(rawValue: 16)

    static let names: [Int32: String] = [
        0: "undefined", 1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
        7: "int64", 8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
        14: "complex64", 15: "complex128", 16: "bfloat16", 17: "float8e4m3fn", 18: "float8e4m3fnuz",
        19: "float8e5m2", 20: "float8e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4e2m1",
        24: "float8e8m0", 25: "uint2", 26: "int2",
    ]

    public var description: String { Self.names[rawValue] ?? "type#\(rawValue)" }

    /// Storage size of one element in bits (4 and 2 for the packed sub-byte types);
    /// nil for strings and unknown types.
    public var bitWidth: Int? {
        switch rawValue {
        case 1, 6, 12: return 32
        case 2, 3, 9, 17, 18, 19, 20, 24: return 8
        case 4, 5, 10, 16: return 16
        case 7, 11, 13, 14: return 64
        case 15: return 128
        case 21, 22, 23: return 4
        case 25, 26: return 2
        default: return nil
        }
    }

    /// Bytes needed for `count` elements stored densely (sub-byte types packed, rounded up).
    public func byteCount(elements count: Int) -> Int? {
        guard let bits = bitWidth else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: bits)
        return overflow ? nil : (product + 7) / 8
    }
}

/// Where an initializer's bytes were read from, when it was stored outside the model file.
public struct ExternalLocation: Hashable, Sendable {
    public var path: String
    public var offset: Int
    public var length: Int
}

/// A dense tensor: element type, dimensions and data.
///
/// Numeric data is kept in one canonical form, little-endian packed bytes (`data`),
/// whichever TensorProto field it came from; strings are kept as byte strings.
public struct Tensor: Sendable {
    public var name: String
    public var dataType: DataType
    public var dims: [Int]
    public var data: Data
    public var strings: [Data]
    public var docString: String
    public var metadataProps: [StringPair]
    public var unknownFields: [UnknownField]
    /// Set when the data came from an external file (informational: not part of equality).
    public var externalLocation: ExternalLocation?

    public init(name: String = "", dataType: DataType, dims: [Int], data: Data = Data(), strings: [Data] = [],
                docString: String = "", metadataProps: [StringPair] = [], unknownFields: [UnknownField] = []) {
        self.name = name
        self.dataType = dataType
        self.dims = dims
        self.data = data
        self.strings = strings
        self.docString = docString
        self.metadataProps = metadataProps
        self.unknownFields = unknownFields
    }

    /// Number of elements (1 for a scalar, 0 when any dimension is 0).
    public var elementCount: Int { dims.reduce(1, *) }

    public init(name: String = "", floats: [Float], dims: [Int]) {
        self.init(name: name, dataType: .float, dims: dims,
                  data: floats.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    public init(name: String = "", int64s: [Int64], dims: [Int]) {
        self.init(name: name, dataType: .int64, dims: dims,
                  data: int64s.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    /// The elements read as `T` (the caller names the type matching `dataType`); whole elements only.
    public func elements<T>(as type: T.Type) -> [T] {
        let count = data.count / MemoryLayout<T>.stride
        // No elements: nothing to copy, and the buffers may have no base address at all.
        guard count > 0 else { return [] }
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            // copyMemory, unlike memcpy through force-unwrapped addresses, accepts empty buffers (no address).
            data.withUnsafeBytes { raw in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: raw[..<(count * MemoryLayout<T>.stride)]))
            }
            initialized = count
        }
    }

    public var floats: [Float] { elements(as: Float.self) }
    public var int64s: [Int64] { elements(as: Int64.self) }
}

extension Tensor: Equatable {
    /// Equal when name, type, dims, data and kept fields are equal; where the data came from does not matter.
    public static func == (a: Tensor, b: Tensor) -> Bool {
        a.name == b.name && a.dataType == b.dataType && a.dims == b.dims && a.data == b.data
            && a.strings == b.strings && a.docString == b.docString && a.metadataProps == b.metadataProps
            && a.unknownFields == b.unknownFields
    }
}

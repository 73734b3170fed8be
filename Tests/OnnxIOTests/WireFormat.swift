import Foundation

/// A minimal protobuf writer for tests: it builds model bytes Kizuki's own encoder would never
/// write (hostile external data entries, 50,000 nested subgraphs), independently of the code under test.
struct WireFormat {
    var bytes: [UInt8] = []

    static func varint(_ value: UInt64) -> [UInt8] {
        var v = value, out: [UInt8] = []
        while v >= 0x80 { out.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        return out + [UInt8(v)]
    }

    static func tag(_ field: UInt64, wireType: UInt64) -> [UInt8] { varint(field << 3 | wireType) }

    mutating func int(_ field: UInt64, _ value: Int64) {
        bytes += Self.tag(field, wireType: 0) + Self.varint(UInt64(bitPattern: value))
    }

    mutating func message(_ field: UInt64, _ content: [UInt8]) {
        bytes += Self.tag(field, wireType: 2) + Self.varint(UInt64(content.count)) + content
    }

    mutating func string(_ field: UInt64, _ value: String) { message(field, Array(value.utf8)) }

    mutating func message(_ field: UInt64, _ build: (inout WireFormat) -> Void) {
        var inner = WireFormat()
        build(&inner)
        message(field, inner.bytes)
    }

    /// One level of nesting: the fields written before the field that holds the next level.
    struct Level {
        var prefix: [UInt8]
        var field: UInt64
    }

    /// Messages nested through `levels` (outermost first) around `innermost`. Lengths are computed
    /// from the inside out first, so a million levels cost linear time, not quadratic copying.
    static func nested(_ levels: [Level], innermost: [UInt8] = []) -> Data {
        var lengths = [Int](repeating: innermost.count, count: levels.count + 1)
        for i in stride(from: levels.count - 1, through: 0, by: -1) {
            let inner = lengths[i + 1]
            lengths[i] = levels[i].prefix.count + tag(levels[i].field, wireType: 2).count + varint(UInt64(inner)).count + inner
        }
        var out: [UInt8] = []
        out.reserveCapacity(lengths[0])
        for (i, level) in levels.enumerated() {
            out += level.prefix + tag(level.field, wireType: 2) + varint(UInt64(lengths[i + 1]))
        }
        return Data(out + innermost)
    }
}

/// Field numbers of onnx.proto used by the tests (ONNX IR spec).
enum ONNXField {
    // ModelProto
    static let irVersion: UInt64 = 1, graph: UInt64 = 7, opsetImport: UInt64 = 8
    // OperatorSetIdProto
    static let opsetVersion: UInt64 = 2
    // GraphProto
    static let node: UInt64 = 1, initializer: UInt64 = 5, input: UInt64 = 11, output: UInt64 = 12
    // NodeProto
    static let opType: UInt64 = 4, attribute: UInt64 = 5
    // AttributeProto
    static let attributeName: UInt64 = 1, attributeGraph: UInt64 = 6, attributeType: UInt64 = 20
    static let graphType: Int64 = 5
    // ValueInfoProto
    static let valueName: UInt64 = 1, valueType: UInt64 = 2
    // TypeProto and TypeProto.Sequence
    static let sequenceType: UInt64 = 4, elementType: UInt64 = 1
    // TensorProto
    static let dims: UInt64 = 1, dataType: UInt64 = 2, tensorName: UInt64 = 8, externalData: UInt64 = 13, dataLocation: UInt64 = 14
    // StringStringEntryProto
    static let key: UInt64 = 1, value: UInt64 = 2
}

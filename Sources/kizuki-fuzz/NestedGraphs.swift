import Foundation

/// A model whose graph nests `depth` If nodes, each holding the next graph in its `then_branch`,
/// written as raw protobuf: decoders that recurse once per level run out of stack on such input.
/// Built inside out in linear time (field order is free in protobuf, so each level is a pure prefix).
enum NestedGraphs {
    static func model(depth: Int) -> Data {
        var graphLength = 0
        var prefixes: [[UInt8]] = []
        for _ in 0..<depth {
            let attribute = field(1, Array("then_branch".utf8)) + [0xA0, 0x01, 5] + tag(6) + varint(graphLength)  // type = GRAPH
            let attributeLength = attribute.count + graphLength
            let node = field(4, Array("If".utf8)) + field(1, Array("cond".utf8)) + tag(5) + varint(attributeLength)
            let nodeLength = node.count + attributeLength
            let prefix = tag(1) + varint(nodeLength) + node + attribute
            prefixes.append(prefix)
            graphLength = tag(1).count + varint(nodeLength).count + nodeLength
        }
        var out: [UInt8] = [0x08, 8] + field(8, field(1, []) + [0x10, 13])  // ir_version 8, opset_import {"" 13}
        out += tag(7) + varint(graphLength)
        for prefix in prefixes.reversed() { out += prefix }
        return Data(out)
    }

    static func tag(_ number: Int) -> [UInt8] { varint(number << 3 | 2) }
    static func field(_ number: Int, _ bytes: [UInt8]) -> [UInt8] { tag(number) + varint(bytes.count) + bytes }
    static func varint(_ value: Int) -> [UInt8] {
        var v = UInt64(value), out: [UInt8] = []
        repeat { out.append(UInt8(v & 0x7f) | (v >= 0x80 ? 0x80 : 0)); v >>= 7 } while v > 0
        return out
    }
}

import CONNX

/// protobuf-c unpacks a sub-message by calling itself, so a small file holding 50,000 subgraphs nested
/// in one another (If bodies inside If bodies) overflows the stack before Kizuki sees any of it.
/// `check` walks the wire format first, with an explicit stack instead of recursion, following the
/// schema's message-typed fields (read from protobuf-c's generated descriptors, so every message that
/// can nest is covered: graphs, TypeProto sequences, functions, training info), and refuses nesting
/// beyond the limits below. Framing errors are refused too: protobuf-c would refuse the same bytes.
enum NestingLimit {
    /// Graphs inside graphs, the main graph being level 1. Real models nest a handful of levels.
    static let maxGraphDepth = 64
    /// Messages inside messages of any type, the top message being level 1. A graph level costs three
    /// (Graph > Node > Attribute), so 64 graph levels with their value types take about 200.
    static let maxMessageDepth = 256

    private struct Frame {
        let descriptor: UnsafePointer<ProtobufCMessageDescriptor>
        let end: Int
        let graphDepth: Int
    }

    static func check(_ bytes: UnsafeRawBufferPointer, as descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
                      file: String, what: String) throws {
        func malformed(_ at: Int) -> OnnxError {
            OnnxError(.malformed, file: file, "not a valid \(what) (protobuf framing broken at byte \(at): truncated or corrupt)")
        }
        var pos = 0
        func varint(below end: Int) throws -> UInt64 {
            var value: UInt64 = 0
            for shift in stride(from: UInt64(0), to: 70, by: 7) {
                guard pos < end else { throw malformed(pos) }
                let byte = bytes[pos]
                pos += 1
                value |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return value }
            }
            throw malformed(pos)  // more than 10 bytes: not a varint
        }
        func skip(_ n: Int, below end: Int) throws {
            guard n <= end - pos else { throw malformed(pos) }
            pos += n
        }

        var stack = [Frame(descriptor: descriptor, end: bytes.count, graphDepth: descriptor == Descriptors.graph ? 1 : 0)]
        while let top = stack.last {
            if pos == top.end {
                stack.removeLast()
                continue
            }
            let tag = try varint(below: top.end)
            guard tag >> 3 <= UInt64(UInt32.max) else { throw malformed(pos) }
            switch tag & 7 {
            case 0: _ = try varint(below: top.end)
            case 1: try skip(8, below: top.end)
            case 5: try skip(4, below: top.end)
            case 2:
                let length = try varint(below: top.end)
                guard length <= UInt64(top.end - pos) else { throw malformed(pos) }
                let end = pos + Int(length)
                guard let sub = messageType(of: UInt32(tag >> 3), in: top.descriptor) else {
                    pos = end
                    continue
                }
                let graphDepth = top.graphDepth + (sub == Descriptors.graph ? 1 : 0)
                if graphDepth > maxGraphDepth {
                    throw OnnxError(.tooDeep, file: file,
                                    "\(what) nests graphs more than \(maxGraphDepth) levels deep (subgraphs of If/Loop/Scan or graph attributes); Kizuki reads at most \(maxGraphDepth)")
                }
                if stack.count >= maxMessageDepth {
                    throw OnnxError(.tooDeep, file: file,
                                    "\(what) nests protobuf messages more than \(maxMessageDepth) levels deep (reached in a \(String(cString: sub.pointee.name))); Kizuki reads at most \(maxMessageDepth)")
                }
                stack.append(Frame(descriptor: sub, end: end, graphDepth: graphDepth))
            default:
                throw malformed(pos)  // groups (3, 4) and undefined wire types; protobuf-c refuses them too
            }
        }
    }

    /// The message type of field `number`, or nil when the field is not a sub-message (or unknown).
    private static func messageType(of number: UInt32, in descriptor: UnsafePointer<ProtobufCMessageDescriptor>)
        -> UnsafePointer<ProtobufCMessageDescriptor>? {
        let d = descriptor.pointee
        guard let fields = d.fields else { return nil }
        for i in 0..<Int(d.n_fields) where fields[i].id == number {
            guard fields[i].type == PROTOBUF_C_TYPE_MESSAGE, let sub = fields[i].descriptor else { return nil }
            return sub.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
        }
        return nil
    }
}

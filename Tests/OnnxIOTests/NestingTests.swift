import Foundation
import XCTest
@testable import OnnxIO

/// Nesting beyond the documented limits is refused with a named error, before protobuf-c's recursive
/// unpacking (or any recursive Swift code) could overflow the stack.
final class NestingTests: XCTestCase {
    typealias F = ONNXField

    /// A ModelProto whose graph holds an If node whose attribute holds a graph ... `graphs` graphs deep.
    static func nestedIfModel(graphs: Int) -> Data {
        var head = WireFormat()
        head.int(F.irVersion, 8)
        head.message(F.opsetImport) { $0.int(F.opsetVersion, 13) }
        var levels = [WireFormat.Level(prefix: head.bytes, field: F.graph)]
        var node = WireFormat()
        node.string(F.opType, "If")
        var attribute = WireFormat()
        attribute.string(F.attributeName, "then_branch")
        attribute.int(F.attributeType, F.graphType)
        for _ in 1..<graphs {
            levels.append(WireFormat.Level(prefix: [], field: F.node))  // graph > node
            levels.append(WireFormat.Level(prefix: node.bytes, field: F.attribute))  // node > attribute
            levels.append(WireFormat.Level(prefix: attribute.bytes, field: F.attributeGraph))  // attribute > graph
        }
        return WireFormat.nested(levels)
    }

    func assertTooDeep(_ bytes: Data, mentions words: [String], file: StaticString = #filePath, line: UInt = #line) {
        let start = Date()
        XCTAssertThrowsError(try Model(serialized: bytes, file: "deep.onnx"), file: file, line: line) { error in
            guard let e = error as? OnnxError else { return XCTFail("not an OnnxError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.kind, .tooDeep, "\(e)", file: file, line: line)
            XCTAssertEqual(e.file, "deep.onnx", file: file, line: line)
            for w in words { XCTAssertTrue(e.description.contains(w), "'\(w)' not in: \(e)", file: file, line: line) }
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 1.0, file: file, line: line)
    }

    func testFiftyThousandNestedSubgraphsAreRefused() {
        let bytes = Self.nestedIfModel(graphs: 50_000)
        XCTAssertGreaterThan(bytes.count, 500_000)
        assertTooDeep(bytes, mentions: ["graphs", "\(NestingLimit.maxGraphDepth)"])
    }

    func testFiftyThousandNestedSequenceTypesAreRefused() {
        // graph input 'x' of type sequence(sequence(... 50,000 deep)): TypeProto nests without any graph.
        var head = WireFormat()
        head.int(F.irVersion, 8)
        var input = WireFormat()
        input.string(F.valueName, "x")
        var levels = [WireFormat.Level(prefix: head.bytes, field: F.graph),
                      WireFormat.Level(prefix: [], field: F.input),
                      WireFormat.Level(prefix: input.bytes, field: F.valueType)]
        for _ in 0..<50_000 {
            levels.append(WireFormat.Level(prefix: [], field: F.sequenceType))  // TypeProto > Sequence
            levels.append(WireFormat.Level(prefix: [], field: F.elementType))  // Sequence > TypeProto
        }
        assertTooDeep(WireFormat.nested(levels), mentions: ["messages", "\(NestingLimit.maxMessageDepth)"])
    }

    func testNestingAtTheLimitIsDecodedOneLevelMoreIsNot() throws {
        // At the limit the bytes reach protobuf-c and Kizuki's conversion (the graph has no outputs,
        // so only decoding is exercised, with validation off).
        let atLimit = try Model(serialized: Self.nestedIfModel(graphs: NestingLimit.maxGraphDepth), file: "ok.onnx", validate: false)
        var depth = 1
        var graph = atLimit.graph
        while let inner = graph.nodes.first?.subgraphs.first { graph = inner; depth += 1 }
        XCTAssertEqual(depth, NestingLimit.maxGraphDepth)
        assertTooDeep(Self.nestedIfModel(graphs: NestingLimit.maxGraphDepth + 1), mentions: ["graphs"])
    }

    /// A model built in Swift is not bounded by the decoder: the validator checks nesting without recursing.
    func testValidatorRefusesDeepSwiftBuiltGraphs() {
        var graph = Graph()
        graph.outputs = [ValueInfo(name: "y", type: nil)]
        graph.initializers = [Tensor(name: "y", floats: [1], dims: [1])]
        for _ in 0..<NestingLimit.maxGraphDepth {
            var outer = Graph()
            outer.outputs = [ValueInfo(name: "y", type: nil)]
            outer.nodes = [Node(opType: "If", inputs: [], outputs: ["y"],
                                attributes: [Attribute(name: "then_branch", value: .graph(graph))])]
            graph = outer
        }
        XCTAssertThrowsError(try GraphValidator(file: "built").check(graph)) { error in
            XCTAssertEqual((error as? OnnxError)?.kind, .tooDeep, "\(error)")
        }
    }

    func testFramingErrorsAreRefusedBeforeUnpacking() {
        // A length running past the end, and a group wire type (3): both refused, naming the file.
        for bytes in [Data([0x3a, 0x10, 0x0a]), Data([0x0b])] {
            XCTAssertThrowsError(try Model(serialized: bytes, file: "bad.onnx")) { error in
                XCTAssertEqual((error as? OnnxError)?.kind, .malformed, "\(error)")
                XCTAssertTrue("\(error)".contains("bad.onnx"), "\(error)")
            }
        }
    }
}

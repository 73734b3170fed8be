import Foundation
import XCTest
@testable import Engine
import OnnxIO

/// One-node models whose sizes a careless or malicious author made astronomic, negative or not a number.
/// Each must fail with a named `EngineError` (kind and node in the message) while planning, never trap,
/// and never allocate what it asks for.
final class HostileModelTests: XCTestCase {
    struct Case {
        let name: String
        let op: String
        var attributes: [Attribute] = []
        let inputs: [NodeInput]
        var opset = 19
        /// A small budget shows the limit is the session's, not the machine's.
        var budget: Int? = nil
        let kind: EngineError.Kind
    }

    static func i64(_ v: [Int64]) throws -> HostTensor { try HostTensor(shape: [v.count], int64s: v) }
    static func f32(_ shape: [Int], _ v: [Float]) throws -> HostTensor { try HostTensor(shape: shape, floats: v) }

    func cases() throws -> [Case] {
        let big = Int64(1) << 40, huge = Int64.max
        let x22 = try Self.f32([2, 2], [1, 2, 3, 4])
        let image = try Self.f32([1, 1, 2, 2], [1, 2, 3, 4])
        let one = try Self.f32([1], [1])
        let mib = 1 << 20
        return [
            Case(name: "ConstantOfShape whose bytes overflow Int", op: "ConstantOfShape", inputs: [.constant(try Self.i64([big, big, big]))], kind: .tooLarge),
            Case(name: "ConstantOfShape over the budget", op: "ConstantOfShape", inputs: [.constant(try Self.i64([1 << 20, 1 << 20, 1 << 10]))], kind: .tooLarge),
            Case(name: "ConstantOfShape of 4 MiB in a 1 MiB budget", op: "ConstantOfShape", inputs: [.constant(try Self.i64([1024, 1024]))],
                 budget: mib, kind: .tooLarge),
            Case(name: "ConstantOfShape with an empty axis beside an axis of Int64.max", op: "ConstantOfShape",
                 inputs: [.constant(try Self.i64([0, huge]))], kind: .tooLarge),
            Case(name: "ConstantOfShape with a negative dim", op: "ConstantOfShape", inputs: [.constant(try Self.i64([-1, 5]))], kind: .nodeFailed),
            Case(name: "Expand to Int64.max rows", op: "Expand", inputs: [.fed(one), .constant(try Self.i64([huge / 2, 4]))], kind: .tooLarge),
            Case(name: "Tile by Int64.max", op: "Tile", inputs: [.fed(x22), .constant(try Self.i64([huge, 2]))], kind: .tooLarge),
            Case(name: "Tile over the budget", op: "Tile", inputs: [.fed(x22), .constant(try Self.i64([1 << 30, 1 << 30]))], kind: .tooLarge),
            Case(name: "Pad by Int64.max", op: "Pad", inputs: [.fed(x22), .constant(try Self.i64([huge, 0, 0, 0]))], kind: .tooLarge),
            Case(name: "Pad by Int64.min (cropping)", op: "Pad", inputs: [.fed(x22), .constant(try Self.i64([Int64.min, 0, huge, 0]))], kind: .tooLarge),
            Case(name: "Pad over the budget", op: "Pad", inputs: [.fed(x22), .constant(try Self.i64([big, 0, big, 0]))], kind: .tooLarge),
            Case(name: "Pad-2 attribute of Int64.max", op: "Pad", attributes: [attr("pads", [Int.max, 0, 0, 0])], inputs: [.fed(x22)],
                 opset: 2, kind: .tooLarge),
            Case(name: "Reshape to a product that overflows", op: "Reshape",
                 inputs: [.fed(x22), .constant(try Self.i64([huge, huge, -1]))], kind: .tooLarge),
            Case(name: "Resize by a scale of 1e30", op: "Resize",
                 inputs: [.fed(image), .omitted, .constant(try Self.f32([4], [1, 1, 1e30, 1e30]))], kind: .tooLarge),
            Case(name: "Resize by an infinite scale", op: "Resize",
                 inputs: [.fed(image), .omitted, .constant(try Self.f32([4], [1, 1, .infinity, 1]))], kind: .tooLarge),
            Case(name: "Resize by a NaN scale", op: "Resize",
                 inputs: [.fed(image), .omitted, .constant(try Self.f32([4], [1, 1, .nan, 1]))], kind: .nodeFailed),
            Case(name: "Resize to 2^40 × 2^40", op: "Resize",
                 inputs: [.fed(image), .omitted, .omitted, .constant(try Self.i64([1, 1, big, big]))], kind: .tooLarge),
            Case(name: "Resize (linear) whose intermediate pass exceeds the budget", op: "Resize", attributes: [attr("mode", "linear")],
                 inputs: [.fed(try Self.f32([1, 1, 1024, 1], [Float](repeating: 1, count: 1024))), .omitted, .omitted,
                          .constant(try Self.i64([1, 1, 1, 1 << 12]))],
                 budget: 8 * mib, kind: .tooLarge),
            Case(name: "Resize keep_aspect_ratio_policy with sizes of Int64.max", op: "Resize", attributes: [attr("keep_aspect_ratio_policy", "not_smaller"), attr("axes", [2, 3])],
                 inputs: [.fed(image), .omitted, .omitted, .constant(try Self.i64([huge, 1]))], opset: 18, kind: .tooLarge),
            Case(name: "Resize tf_crop_and_resize with a NaN roi", op: "Resize",
                 attributes: [attr("coordinate_transformation_mode", "tf_crop_and_resize"), attr("mode", "linear")],
                 inputs: [.fed(image), .constant(try Self.f32([8], [0, 0, .nan, 0, 1, 1, 1, 1])), .omitted,
                          .constant(try Self.i64([1, 1, 3, 3]))], kind: .nodeFailed),
            Case(name: "Conv with strides of Int64.max", op: "Conv", attributes: [attr("strides", [Int.max, 1])],
                 inputs: [.fed(image), .constant(try Self.f32([1, 1, 1, 1], [1]))], kind: .tooLarge),
            Case(name: "Conv with pads making a 2^46 × 2^46 output", op: "Conv", attributes: [attr("pads", [1 << 46, 1 << 46, 1 << 46, 1 << 46])],
                 inputs: [.fed(image), .constant(try Self.f32([1, 1, 1, 1], [1]))], kind: .tooLarge),
            Case(name: "Conv whose dilated window overflows", op: "Conv", attributes: [attr("dilations", [1 << 47, 1 << 47])],
                 inputs: [.fed(image), .constant(try Self.f32([1, 1, 1 << 20, 1], [Float](repeating: 0, count: 1 << 20)))], kind: .tooLarge),
            // Grouped (not depthwise), so it stays NCHW: an NHWC Conv unfolds a few rows at a time and needs little scratch.
            Case(name: "Conv whose im2col scratch exceeds the budget", op: "Conv", attributes: [attr("pads", [1, 1, 1, 1]), attr("group", 2)],
                 inputs: [.fed(try Self.f32([1, 64, 32, 32], [Float](repeating: 1, count: 64 * 1024))),
                          .constant(try Self.f32([8, 32, 3, 3], [Float](repeating: 1, count: 8 * 32 * 9)))],
                 budget: mib, kind: .tooLarge),
            Case(name: "Conv on zero channels with group Int64.max", op: "Conv", attributes: [attr("group", Int.max)],
                 inputs: [.fed(try HostTensor(dtype: .float, shape: [1, 0, 2, 2])), .constant(try HostTensor(dtype: .float, shape: [0, 2, 1, 1]))],
                 kind: .tooLarge),
            Case(name: "ConvTranspose on zero channels with group Int64.max", op: "ConvTranspose", attributes: [attr("group", Int.max)],
                 inputs: [.fed(try HostTensor(dtype: .float, shape: [1, 0, 2, 2])), .constant(try HostTensor(dtype: .float, shape: [0, 2, 1, 1]))],
                 kind: .tooLarge),
            Case(name: "Conv with an empty kernel axis", op: "Conv",
                 inputs: [.fed(image), .constant(try HostTensor(dtype: .float, shape: [1, 1, 0, 1]))], kind: .nodeFailed),
            Case(name: "ConvTranspose with strides 2^47", op: "ConvTranspose", attributes: [attr("strides", [1 << 47, 1 << 47])],
                 inputs: [.fed(image), .constant(try Self.f32([1, 1, 1, 1], [1]))], kind: .tooLarge),
            Case(name: "ConvTranspose with output_shape 2^40 × 2^40", op: "ConvTranspose", attributes: [attr("output_shape", [1 << 40, 1 << 40])],
                 inputs: [.fed(image), .constant(try Self.f32([1, 1, 1, 1], [1]))], kind: .tooLarge),
            Case(name: "MaxPool with kernel_shape of Int64.max", op: "MaxPool", attributes: [attr("kernel_shape", [Int.max, 1])],
                 inputs: [.fed(image)], kind: .tooLarge),
            Case(name: "MaxUnpool with strides 2^47", op: "MaxUnpool", attributes: [attr("kernel_shape", [1, 1]), attr("strides", [1 << 47, 1 << 47])],
                 inputs: [.fed(image), .fed(try HostTensor(shape: [1, 1, 2, 2], int64s: [0, 1, 2, 3]))], kind: .tooLarge),
            Case(name: "MaxUnpool whose unpooled size is negative", op: "MaxUnpool",
                 attributes: [attr("kernel_shape", [1, 1]), attr("pads", [4, 4, 4, 4])],
                 inputs: [.fed(image), .fed(try HostTensor(shape: [1, 1, 2, 2], int64s: [0, 1, 2, 3]))], kind: .nodeFailed),
        ]
    }

    func testHostileSizesFailWithANamedError() throws {
        for c in try cases() {
            do {
                let (session, feeds, _) = try makeSession(c.op, c.attributes, inputs: c.inputs, opset: c.opset,
                                                          memoryBudget: c.budget)
                _ = try session.run(feeds)
                XCTFail("\(c.name): ran")
            } catch let e as EngineError {
                XCTAssertEqual(e.kind, c.kind, "\(c.name): \(e.message)")
                XCTAssertTrue(e.message.contains(c.op), "\(c.name): the message should name the node: \(e.message)")
            }
        }
    }

    /// The budget is what limits: the same model plans once it is raised.
    /// Degenerate but valid convolutions (found by the fuzzer): no input channels makes an empty column matrix,
    /// whose zero-sized scratch was force-unwrapped; the result is the bias alone (here none: zeros).
    func testConvWithoutInputChannelsIsZero() throws {
        let y = try runNode("Conv", inputs: [.fed(try HostTensor(dtype: .float, shape: [1, 0, 4, 4])),
                                              .constant(try HostTensor(dtype: .float, shape: [2, 0, 3, 3]))])[0]
        XCTAssertEqual(y.shape, [1, 2, 2, 2])
        XCTAssertEqual(y.floats, [Float](repeating: 0, count: 8))
        let bias = try runNode("Conv", inputs: [.fed(try HostTensor(dtype: .float, shape: [1, 0, 4, 4])),
                                                 .constant(try HostTensor(dtype: .float, shape: [2, 0, 3, 3])),
                                                 .constant(try Self.f32([2], [1.5, -2]))])[0]
        XCTAssertEqual(bias.floats, [1.5, 1.5, 1.5, 1.5, -2, -2, -2, -2])
    }

    func testBudgetIsTheLimit() throws {
        let shape = try Self.i64([1024, 1024])
        XCTAssertThrowsError(try runNode("ConstantOfShape", inputs: [.constant(shape)], memoryBudget: 4 << 20 - 1))
        let y = try runNode("ConstantOfShape", inputs: [.constant(shape)], memoryBudget: 12 << 20)[0]
        XCTAssertEqual(y.shape, [1024, 1024])
    }

    /// An initializer whose dims promise more than its data holds, or more than any memory.
    func testInitializerSizesAreChecked() throws {
        func session(_ t: Tensor) throws -> Session {
            var m = Model()
            m.opsetImports = [OpsetID(domain: "", version: 13)]
            m.graph.initializers = [t]
            m.graph.inputs = [ValueInfo(name: "x", type: nil)]
            m.graph.nodes = [Node(opType: "Add", inputs: ["x", t.name], outputs: ["y"])]
            m.graph.outputs = [ValueInfo(name: "y", type: nil)]
            return try Session(model: m)
        }
        let cases: [(Tensor, EngineError.Kind)] = [
            (Tensor(name: "short", dataType: .float, dims: [3], data: Data(count: 8)), .invalidModel),
            (Tensor(name: "long", dataType: .float, dims: [1], data: Data(count: 8)), .invalidModel),
            (Tensor(name: "astronomic", dataType: .float, dims: [1 << 40, 1 << 40]), .tooLarge),
            (Tensor(name: "negative", dataType: .float, dims: [-4]), .invalidModel),
        ]
        for (t, kind) in cases {
            XCTAssertThrowsError(try session(t), t.name) { error in
                XCTAssertEqual((error as? EngineError)?.kind, kind, "\(error)")
                XCTAssertTrue("\(error)".contains("'\(t.name)'"), "\(error)")
            }
        }
    }

    func testHostTensorSizesAreChecked() {
        XCTAssertThrowsError(try HostTensor(dtype: .float, shape: [1 << 40, 1 << 40])) { XCTAssertEqual(($0 as? EngineError)?.kind, .tooLarge) }
        XCTAssertThrowsError(try HostTensor(dtype: .float, shape: [-1])) { XCTAssertEqual(($0 as? EngineError)?.kind, .invalidInput) }
        XCTAssertThrowsError(try HostTensor(shape: [2, 2], floats: [1, 2, 3])) { XCTAssertEqual(($0 as? EngineError)?.kind, .invalidInput) }
        XCTAssertThrowsError(try TensorStorage(byteCount: Int.max - 63)) { XCTAssertEqual(($0 as? EngineError)?.kind, .tooLarge) }
        XCTAssertEqual(try HostTensor(dtype: .float, shape: [0, 3]).elements(as: Float.self), [])
        XCTAssertEqual(try HostTensor(shape: [0], floats: []).count, 0)
        XCTAssertEqual(try HostTensor(Tensor(name: "e", dataType: .int64, dims: [2, 0])).shape, [2, 0])
        XCTAssertEqual(Tensor(name: "e", dataType: .float, dims: [0]).floats, [])
    }
}

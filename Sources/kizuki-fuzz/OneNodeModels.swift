import Anomaly
import Foundation
import OnnxIO

/// Small models the corpus starts from. The one-node models take their shape-like inputs
/// (Expand's shape, Tile's repeats, Pad's pads, Resize's scales...) from initializers, which the
/// model mutator then sets to astronomical, negative or zero values.
enum OneNodeModels {
    static func all() -> [(String, Model)] {
        let x = { (dims: [Int]) in ValueInfo(name: "x", type: .tensor(.float, dims.map { ShapeDim.known($0) })) }
        func ints(_ name: String, _ v: [Int64]) -> Tensor { Tensor(name: name, int64s: v, dims: [v.count]) }
        func floats(_ name: String, _ v: [Float], _ dims: [Int]) -> Tensor { Tensor(name: name, floats: v, dims: dims) }
        return [
            ("constantofshape", model("ConstantOfShape", inputs: [], constants: [ints("shape", [2, 3])], reads: ["shape"],
                                      attributes: [Attribute(name: "value", value: .tensor(floats("", [1.5], [1])))])),
            ("expand", model("Expand", inputs: [x([2, 1])], constants: [ints("shape", [3, 2, 4])], reads: ["x", "shape"])),
            ("tile", model("Tile", inputs: [x([2, 3])], constants: [ints("repeats", [2, 2])], reads: ["x", "repeats"])),
            ("pad", model("Pad", inputs: [x([1, 2, 4, 4])], constants: [ints("pads", [0, 0, 1, 1, 0, 0, 1, 1])], reads: ["x", "pads"],
                          attributes: [Attribute(name: "mode", value: .string(Data("reflect".utf8)))])),
            ("resize", model("Resize", inputs: [x([1, 1, 4, 4])], constants: [floats("scales", [1, 1, 2, 3], [4])], reads: ["x", "", "scales"],
                             attributes: [Attribute(name: "mode", value: .string(Data("linear".utf8)))])),
            ("resize_sizes", model("Resize", inputs: [x([1, 1, 4, 4])], constants: [ints("sizes", [1, 1, 7, 9])], reads: ["x", "", "", "sizes"])),
            ("reshape", model("Reshape", inputs: [x([2, 3, 4])], constants: [ints("shape", [6, -1])], reads: ["x", "shape"])),
            ("slice", model("Slice", inputs: [x([4, 6])], constants: [ints("starts", [0, 1]), ints("ends", [3, 5]), ints("axes", [0, 1])],
                            reads: ["x", "starts", "ends", "axes"])),
            ("gather", model("Gather", inputs: [x([5, 4])], constants: [ints("indices", [0, 4, 1])], reads: ["x", "indices"])),
            ("conv", model("Conv", inputs: [x([1, 2, 5, 5])],
                           constants: [floats("w", (0..<54).map { Float($0 % 7) / 7 }, [3, 2, 3, 3]), floats("b", [0.1, 0.2, 0.3], [3])],
                           reads: ["x", "w", "b"], attributes: [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))])),
            ("maxpool", model("MaxPool", inputs: [x([1, 1, 6, 6])], constants: [], reads: ["x"],
                              attributes: [Attribute(name: "kernel_shape", value: .ints([2, 2])), Attribute(name: "strides", value: .ints([2, 2]))])),
            ("transpose_symbolic", {
                var m = model("Transpose", inputs: [ValueInfo(name: "x", type: .tensor(.float, [.symbol("N"), .known(-1), .symbol("?")]))],
                              constants: [], reads: ["x"], attributes: [Attribute(name: "perm", value: .ints([2, 0, 1]))])
                m.graph.outputs = [ValueInfo(name: "y", type: .tensor(.float, [.symbol("?"), .symbol("N"), .unknown]))]
                return m
            }()),
        ]
    }

    static func model(_ op: String, inputs: [ValueInfo], constants: [Tensor], reads: [String], attributes: [Attribute] = []) -> Model {
        var m = Model()
        m.opsetImports = [OpsetID(domain: "", version: 19)]
        m.graph.name = op
        m.graph.inputs = inputs
        m.graph.initializers = constants
        m.graph.nodes = [Node(name: op.lowercased(), opType: op, inputs: reads, outputs: ["y"], attributes: attributes)]
        m.graph.outputs = [ValueInfo(name: "y", type: .tensor(.float, nil))]
        return m
    }

    /// The embedder the CLI trials use: images [N,28,28,1] → Flatten → MatMul [784, 8] → [N, 8].
    static func embedder() -> Model {
        var rng = SeededGenerator(seed: 1)
        let weights = (0..<784 * 8).map { _ in Float(rng.next() % 2001) / 1000 - 1 }
        var m = model("Flatten", inputs: [ValueInfo(name: "images", type: .tensor(.float, [.symbol("N"), .known(28), .known(28), .known(1)]))],
                      constants: [Tensor(name: "w", floats: weights, dims: [784, 8])], reads: ["images"],
                      attributes: [Attribute(name: "axis", value: .int(1))])
        m.graph.nodes[0].outputs = ["flat"]
        m.graph.nodes.append(Node(name: "project", opType: "MatMul", inputs: ["flat", "w"], outputs: ["embedding"]))
        m.graph.outputs = [ValueInfo(name: "embedding", type: .tensor(.float, [.symbol("N"), .known(8)]))]
        return m
    }

    /// x [2, 4] · w [4, 4], w stored in an external file named weights.bin.
    static func externalData() -> Model {
        model("MatMul", inputs: [ValueInfo(name: "x", type: .tensor(.float, [.known(2), .known(4)]))],
              constants: [Tensor(name: "w", floats: (0..<16).map(Float.init), dims: [4, 4])], reads: ["x", "w"])
    }
}

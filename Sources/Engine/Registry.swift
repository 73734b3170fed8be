import OnnxIO

public typealias KernelFactory = (NodeInfo) throws -> Kernel

/// Op type → kernel factory for the default ONNX domain. Each op family file adds one table.
public enum OpRegistry {
    public static let factories: [String: KernelFactory] = {
        var all: [String: KernelFactory] = [:]
        let tables: [[String: KernelFactory]] = [
            elementwiseOps, activationOps, matmulOps, convOps, poolOps, normalizationOps, lpNormalizationOps,
            resizeOps, shapeOps, dataMovementOps, reduceOps, constantOps,
        ]
        for table in tables {
            all.merge(table) { first, _ in first }
        }
        return all
    }()

    public static var supportedOps: [String] { factories.keys.sorted() }
}

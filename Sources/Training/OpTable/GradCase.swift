import Foundation

/// One case of the training-kernel table (ggml's test-backend-ops, for gradients): an operator with fixed
/// shapes and attributes, its fast float32 forward and backward kernels, and a naive float64 reference forward.
/// The tests check forward against the reference and backward against central finite differences of the
/// reference; `kizuki bench train-ops` times forward and backward over the same table at network sizes.
public struct GradCase {
    /// Operator family, e.g. "Conv", "BatchNormalization".
    public var op: String
    /// What distinguishes this case, e.g. "depthwise 3x3 s2 pad(0,0,1,1) 6x7x7".
    public var name: String
    /// Shapes of the inputs, in the kernel's order (x first, then parameters).
    public var inputShapes: [[Int]]
    /// Value range each input is drawn from (uniformly); keep inputs off kinks (ReLU6 at 0 and 6).
    public var inputRanges: [ClosedRange<Float>]
    /// Per input, an optional map applied to each uniform draw (nil: the draw as is), for inputs that must avoid
    /// points inside their range, e.g. ReLU6's kinks: the finite-difference step must not cross one.
    public var inputMaps: [((Float) -> Float)?]
    /// Inputs whose gradient the backward kernel returns (the others get nil).
    public var differentiable: [Bool]
    public var outputShape: [Int]
    /// Largest allowed relative error by norm, ‖fast − reference‖ / ‖reference‖, for the output and each gradient.
    public var tolerance: Double
    /// The naive reference forward in float64: inputs (flat, row-major) → output (flat).
    public var reference: ([[Double]]) -> [Double]
    /// The fast kernel's forward on float32 inputs.
    public var forward: ([[Float]]) -> [Float]
    /// The fast kernel's backward: inputs and dL/dy → dL/dinput for each differentiable input, nil for the others.
    public var backward: ([[Float]], [Float]) -> [[Float]?]

    public init(op: String, name: String, inputShapes: [[Int]], inputRanges: [ClosedRange<Float>]? = nil,
                inputMaps: [((Float) -> Float)?]? = nil, differentiable: [Bool]? = nil, outputShape: [Int],
                tolerance: Double = 1e-4,
                reference: @escaping ([[Double]]) -> [Double], forward: @escaping ([[Float]]) -> [Float],
                backward: @escaping ([[Float]], [Float]) -> [[Float]?]) {
        self.op = op; self.name = name; self.inputShapes = inputShapes
        self.inputRanges = inputRanges ?? Array(repeating: -1...1, count: inputShapes.count)
        self.inputMaps = inputMaps ?? Array(repeating: nil, count: inputShapes.count)
        self.differentiable = differentiable ?? Array(repeating: true, count: inputShapes.count)
        self.outputShape = outputShape; self.tolerance = tolerance
        self.reference = reference; self.forward = forward; self.backward = backward
    }

    public var label: String { "\(op) \(name)" }

    /// Input `input`'s value for a uniform draw from its range.
    public func sample(_ input: Int, _ uniform: Float) -> Float { inputMaps[input].map { $0(uniform) } ?? uniform }
}

/// The sizes a table is built at: small enough for finite differences, or the network's own for timing.
public enum GradCaseSize: Sendable { case check, timing }

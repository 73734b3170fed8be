import XCTest
@testable import Training

/// Every case of `OpTable`: the fast forward against the float64 reference, and the fast backward against
/// central finite differences of the reference (L = Σ dy · f(x) with a random dy).
final class GradientTableTests: XCTestCase {
    func testTableCoversEveryTrainingOp() {
        let ops = Set(OpTable.cases(.check).map(\.op))
        for op in ["Conv", "BatchNormalization", "Relu6", "Add", "UpsampleNearest", "Pad", "GlobalAveragePool", "Dense", "L2Normalize"] {
            XCTAssertTrue(ops.contains(op), "no gradient case for \(op)")
        }
    }

    func testForwardAndBackwardAgainstReferenceAndFiniteDifferences() {
        var worst: [String: (forward: Double, gradient: Double)] = [:]
        for (index, c) in OpTable.cases(.check).enumerated() {
            var rng = TestRandom(seed: UInt64(index) &+ 0x5EED)
            let inputs = zip(c.inputShapes, c.inputRanges).enumerated().map { i, shapeAndRange in
                let (shape, range) = shapeAndRange
                return (0..<shape.reduce(1, *)).map { _ in
                    c.sample(i, Float(rng.uniform(Double(range.lowerBound), Double(range.upperBound))))
                }
            }
            let inputs64 = inputs.map { $0.map(Double.init) }
            let count = c.outputShape.reduce(1, *)
            let dy = (0..<count).map { _ in Float(rng.uniform(-1, 1)) }
            let dy64 = dy.map(Double.init)

            let expected = c.reference(inputs64)
            let actual = c.forward(inputs)
            XCTAssertEqual(expected.count, count, "\(c.label): reference output size")
            XCTAssertEqual(actual.count, count, "\(c.label): output size")
            let forwardError = relativeError(actual.map(Double.init), expected)
            XCTAssertLessThanOrEqual(forwardError, c.tolerance, "\(c.label): forward")

            let grads = c.backward(inputs, dy)
            XCTAssertEqual(grads.count, inputs.count, "\(c.label): one gradient slot per input")
            var gradientError = 0.0
            for (i, differentiable) in c.differentiable.enumerated() where differentiable {
                guard i < grads.count, let g = grads[i] else { XCTFail("\(c.label): no gradient for input \(i)"); continue }
                XCTAssertEqual(g.count, inputs[i].count, "\(c.label): gradient \(i) size")
                let numeric = finiteDifferences(c, inputs64, input: i, dy: dy64)
                let e = relativeError(g.map(Double.init), numeric)
                gradientError = max(gradientError, e)
                XCTAssertLessThanOrEqual(e, c.tolerance, "\(c.label): gradient of input \(i)")
            }
            let w = worst[c.op] ?? (0, 0)
            worst[c.op] = (max(w.forward, forwardError), max(w.gradient, gradientError))
        }
        for (op, w) in worst.sorted(by: { $0.key < $1.key }) {
            print(String(format: "gradient table: %@ worst forward %.2e, worst gradient %.2e", op, w.forward, w.gradient))
        }
    }

    /// dL/dx_i ≈ (L(x + h·e_i) − L(x − h·e_i)) / 2h on the float64 reference.
    private func finiteDifferences(_ c: GradCase, _ inputs: [[Double]], input: Int, dy: [Double]) -> [Double] {
        var x = inputs
        return (0..<x[input].count).map { k in
            let v = x[input][k], h = 1e-5 * max(1, abs(v))
            x[input][k] = v + h
            let plus = zip(c.reference(x), dy).reduce(0) { $0 + $1.0 * $1.1 }
            x[input][k] = v - h
            let minus = zip(c.reference(x), dy).reduce(0) { $0 + $1.0 * $1.1 }
            x[input][k] = v
            return (plus - minus) / (2 * h)
        }
    }
}

/// ‖a − b‖ / max(‖b‖, tiny).
func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    guard a.count == b.count else { return .infinity }
    let diff = zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
    let norm = b.reduce(0) { $0 + $1 * $1 }
    return (diff / max(norm, 1e-300)).squareRoot()
}

/// Test data from the trainer's own generator (`TrainingRandom`), drawn as Double.
struct TestRandom {
    private var base: TrainingRandom
    init(seed: UInt64) { base = TrainingRandom(seed: seed) }
    mutating func next() -> UInt64 { base.next() }
    mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * Double(next() >> 11) / Double(1 << 53) }
}

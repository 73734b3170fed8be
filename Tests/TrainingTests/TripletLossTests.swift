import Foundation
import XCTest
@testable import Training

/// The fast triplet losses against the brute-force float64 references of TripletLossReference.swift: values,
/// gradients, ties, batches without triplets, finite differences, and the real batch size.
final class TripletLossTests: XCTestCase {
    // MARK: - Hand-computed cases

    /// 1-D embeddings [0, 0, 1], labels [0, 0, 1]: P = 5 pairs at distance 0 ((0,0), (0,1), (1,0), (1,1), (2,2)),
    /// N = 4 pairs at distance 1. With margin 1 every hinge is exactly 0: no value, no gradient. With margin 1.25
    /// every hinge is 0.25, so L = 0.25, dL/dd_p = 4/20, dL/dd_n = −5/20, and dL/de = [1, 1, −2].
    func testBatchAllHandComputedTieAndMargin() {
        let e: [Float] = [0, 0, 1], labels: [Int32] = [0, 0, 1]
        let atTie = fast(.batchAll, e, labels, dim: 1, margin: 1)
        XCTAssertEqual(atTie.loss, 0)
        XCTAssertEqual(atTie.gradient, [0, 0, 0])
        let beyond = fast(.batchAll, e, labels, dim: 1, margin: 1.25)
        XCTAssertEqual(beyond.loss, 0.25)
        XCTAssertEqual(beyond.gradient, [1, 1, -2])
    }

    /// 1-D embeddings [0, 1, 2], labels [0, 0, 1]. Anchor 0: hardest positive d = 1, hardest negative d = 4,
    /// x = −3; anchor 1: positive d = 1, negative d = 1, x = 0; anchor 2 has no positive. Margin 1: hinges 0 and 1,
    /// L = 1/2, and only anchor 1 moves: dL/dd_10 = 1/2, dL/dd_12 = −1/2, dL/de = [−1, 2, −1].
    /// Soft margin: L = (log(1 + e⁻³) + log 2) / 2.
    func testBatchHardAndSoftMarginHandComputed() {
        let e: [Float] = [0, 1, 2], labels: [Int32] = [0, 0, 1]
        let hard = fast(.batchHard, e, labels, dim: 1, margin: 1)
        XCTAssertEqual(hard.loss, 0.5)
        XCTAssertEqual(hard.gradient, [-1, 2, -1])
        let soft = fast(.softMargin, e, labels, dim: 1, margin: 1)
        XCTAssertEqual(soft.loss, (log(1 + exp(-3.0)) + log(2.0)) / 2, accuracy: 1e-15)
    }

    func testNonFiniteEmbeddingGivesNaN() {
        for kind in TripletLossKind.allCases {
            let result = fast(kind, [0, .infinity, 1, 2], [0, 0, 1, 1], dim: 1, margin: 0.2)
            XCTAssertTrue(result.loss.isNaN, "\(kind)")
            XCTAssertTrue(result.gradient.allSatisfy(\.isNaN), "\(kind)")
        }
    }

    // MARK: - Brute force

    /// Random batches of 2…40 embeddings of dimension 1…16 over every label mix, all three kinds.
    func testRandomBatchesAgainstBruteForce() {
        var rng = TestRandom(seed: 0x7121_9E7)
        var worst = [TripletLossKind: (loss: Double, gradient: Double)]()
        for trial in 0..<72 {
            let count = 2 + Int(rng.next() % 39), dim = 1 + Int(rng.next() % 16)
            let labels = labelMix(trial % LabelMix.allCases.count, count: count, rng: &rng)
            let scale = 1 / Double(dim).squareRoot()
            let e = (0..<count * dim).map { _ in Float(rng.uniform(-scale, scale)) }
            let margin: Float = [0.2, 0.5, 1][trial % 3]
            for kind in TripletLossKind.allCases {
                let label = "\(kind) trial \(trial) count \(count) dim \(dim) \(LabelMix.allCases[trial % LabelMix.allCases.count])"
                let errors = compare(kind, e, labels, dim: dim, margin: margin, label: label)
                let w = worst[kind] ?? (0, 0)
                worst[kind] = (max(w.loss, errors.loss), max(w.gradient, errors.gradient))
            }
        }
        for kind in TripletLossKind.allCases {
            print(String(format: "triplet %@ vs brute force: worst loss %.2e, worst gradient %.2e (relative)",
                         kind.rawValue, worst[kind]!.loss, worst[kind]!.gradient))
        }
    }

    /// Integer embeddings in −2…2 (many duplicates and equal distances) with margins 1, 0.25 and 0, exact in binary:
    /// hinges land exactly on 0 and hardest positives/negatives tie. The values are sums of exact numbers, so the
    /// fast losses equal the brute force bit for bit; the gradients must agree with the strict tie rule (> 0),
    /// and disagree with the inclusive one (≥ 0), which shows that these batches do test the rule.
    func testTiesAgainstBruteForce() {
        var rng = TestRandom(seed: 0x7135)
        var zeroHinges = 0, hardTies = 0, inclusiveDiffers = 0
        var worstGradient = 0.0
        for trial in 0..<60 {
            let count = 2 + Int(rng.next() % 23), dim = 1 + Int(rng.next() % 4)
            let labels = labelMix(trial % LabelMix.allCases.count, count: count, rng: &rng)
            let e = (0..<count * dim).map { _ in Float(Int(rng.next() % 5) - 2) }
            let e64 = e.map(Double.init)
            let margin: Float = [1, 0.25, 0][trial % 3]
            for kind in TripletLossKind.allCases {
                let label = "ties \(kind) trial \(trial) count \(count) dim \(dim) margin \(margin)"
                let result = fast(kind, e, labels, dim: dim, margin: margin)
                let expected = reference(kind, e64, labels, dim: dim, margin: margin)
                if kind == .softMargin {
                    XCTAssertEqual(result.loss, expected.loss, accuracy: 1e-12 * abs(expected.loss), label)
                } else {
                    XCTAssertEqual(result.loss, expected.loss, label)
                }
                worstGradient = max(worstGradient, checkGradient(result.gradient, expected.gradient, label: label))
                zeroHinges += expected.zeroHinges
                // Soft margin has no hinge: a zero gap is a tie for the hardest positive or negative.
                if kind == .softMargin, expected.kinkGap == 0 { hardTies += 1 }
                if kind == .batchAll {
                    let inclusive = TripletReference.batchAll(e64, labels: labels, dim: dim, margin: Double(margin), inclusive: true)
                    if maxDifference(result.gradient.map(Double.init), inclusive.gradient) > 1e-4 * maxAbs(inclusive.gradient) {
                        inclusiveDiffers += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(zeroHinges, 1000, "the batches must put hinges exactly at 0")
        XCTAssertGreaterThan(hardTies, 20, "the batches must tie hardest positives or negatives")
        XCTAssertGreaterThan(inclusiveDiffers, 10, "the tie rule must change the gradient of some batches")
        print(String(format: "triplet ties: %d hinges at 0, %d batches with tied hardest pairs, inclusive rule differs in %d batches, worst gradient %.2e",
                     zeroHinges, hardTies, inclusiveDiffers, worstGradient))
    }

    /// Batches without a triplet: one class (N = 0), and for batch-hard one sample per label (no anchor).
    func testBatchesWithoutTripletsGiveZero() {
        var rng = TestRandom(seed: 0x7140)
        for count in [1, 2, 7, 30] {
            let e = (0..<count * 3).map { _ in Float(rng.uniform(-1, 1)) }
            for kind in TripletLossKind.allCases {
                let single = fast(kind, e, [Int32](repeating: 4, count: count), dim: 3, margin: 0.2)
                XCTAssertEqual(single.loss, 0, "\(kind) one class, count \(count)")
                XCTAssertEqual(single.gradient, [Float](repeating: 0, count: count * 3), "\(kind) one class, count \(count)")
            }
            for kind in [TripletLossKind.batchHard, .softMargin] {
                let distinct = fast(kind, e, (0..<count).map(Int32.init), dim: 3, margin: 0.2)
                XCTAssertEqual(distinct.loss, 0, "\(kind) all labels distinct, count \(count)")
                XCTAssertEqual(distinct.gradient, [Float](repeating: 0, count: count * 3), "\(kind) all distinct")
            }
        }
    }

    /// The fast gradients against central differences of the brute-force losses, away from kinks: a step h moves
    /// any distance by at most 4h + h² (coordinates in [−1, 1]), so every hinge and hardest-pair gap ≥ 100h stays put
    /// and the loss is smooth (piecewise quadratic or softplus) over the stencil.
    func testGradientsAgainstFiniteDifferences() {
        var rng = TestRandom(seed: 0x7150)
        let h = 1e-7
        var worst = [TripletLossKind: Double](), checked = [TripletLossKind: Int]()
        for trial in 0..<36 {
            let count = 3 + Int(rng.next() % 10), dim = 1 + Int(rng.next() % 6)
            let labels = labelMix([3, 4, 5][trial % 3], count: count, rng: &rng)
            let scale = 1 / Double(dim).squareRoot()
            let e = (0..<count * dim).map { _ in Float(rng.uniform(-scale, scale)) }
            let e64 = e.map(Double.init)
            let margin: Float = 0.3
            for kind in TripletLossKind.allCases {
                let expected = reference(kind, e64, labels, dim: dim, margin: margin)
                guard expected.kinkGap > 100 * h, maxAbs(expected.gradient) > 0 else { continue }
                var x = e64
                let numeric = (0..<x.count).map { k -> Double in
                    let v = x[k]
                    x[k] = v + h
                    let plus = reference(kind, x, labels, dim: dim, margin: margin).loss
                    x[k] = v - h
                    let minus = reference(kind, x, labels, dim: dim, margin: margin).loss
                    x[k] = v
                    return (plus - minus) / (2 * h)
                }
                let result = fast(kind, e, labels, dim: dim, margin: margin)
                let error = relativeError(result.gradient.map(Double.init), numeric)
                XCTAssertLessThanOrEqual(error, 1e-5, "finite differences \(kind) trial \(trial) count \(count) dim \(dim)")
                worst[kind] = max(worst[kind] ?? 0, error)
                checked[kind, default: 0] += 1
            }
        }
        for kind in TripletLossKind.allCases {
            XCTAssertGreaterThanOrEqual(checked[kind] ?? 0, 15, "\(kind): too few batches away from kinks")
            print(String(format: "triplet %@ vs finite differences: %d batches, worst gradient %.2e (relative)",
                         kind.rawValue, checked[kind] ?? 0, worst[kind] ?? 0))
        }
    }

    /// The training batch: 128 embeddings of dimension 128, 14 of the normal class (P×N ≈ 4.2·10⁷ for batch-all).
    func testRealBatchSizeAgainstBruteForce() {
        var rng = TestRandom(seed: 0x7160)
        let count = 128, dim = 128
        var labels = [Int32](repeating: 0, count: count)
        var placed = 0
        while placed < 14 {
            let i = Int(rng.next() % UInt64(count))
            if labels[i] == 0 { labels[i] = 1; placed += 1 }
        }
        // Coordinates of ±0.05: distances around 0.2, so the margin 0.2 leaves both active and inactive triplets.
        let e = (0..<count * dim).map { _ in Float(rng.uniform(-0.05, 0.05)) }
        for kind in TripletLossKind.allCases {
            let errors = compare(kind, e, labels, dim: dim, margin: 0.2, label: "\(kind) 128x128")
            var gradient = [Float](repeating: 0, count: e.count)
            let start = DispatchTime.now().uptimeNanoseconds
            _ = e.withUnsafeBufferPointer { e in
                gradient.withUnsafeMutableBufferPointer { g in
                    TripletLoss.evaluate(kind, embeddings: e.baseAddress!, labels: labels, dim: dim, margin: 0.2, gradient: g.baseAddress)
                }
            }
            let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            print(String(format: "triplet %@ at 128x128: loss %.2e, gradient %.2e (relative), one evaluation with gradient %.2f ms",
                         kind.rawValue, errors.loss, errors.gradient, ms))
        }
    }

    // MARK: - Helpers

    enum LabelMix: CaseIterable { case oneClass, onePositiveSample, allDistinct, binary, fourClasses, fewPositives }

    private func labelMix(_ mix: Int, count: Int, rng: inout TestRandom) -> [Int32] {
        switch LabelMix.allCases[mix] {
        case .oneClass: return [Int32](repeating: 1, count: count)
        case .onePositiveSample:
            var labels = [Int32](repeating: 0, count: count)
            labels[Int(rng.next() % UInt64(count))] = 1
            return labels
        case .allDistinct: return (0..<count).map { Int32($0 * 3 - 7) }
        case .binary: return (0..<count).map { _ in Int32(rng.next() % 2) }
        case .fourClasses: return (0..<count).map { _ in Int32(rng.next() % 4) }
        case .fewPositives: return (0..<count).map { _ in rng.next() % 8 == 0 ? 1 : 0 }
        }
    }

    /// The loss and gradient (the buffer starts as NaN, so every element must be written); the loss without a
    /// gradient must be the same number.
    private func fast(_ kind: TripletLossKind, _ e: [Float], _ labels: [Int32], dim: Int, margin: Float)
        -> (loss: Double, gradient: [Float]) {
        var gradient = [Float](repeating: .nan, count: e.count)
        let (loss, lossOnly) = e.withUnsafeBufferPointer { e in
            gradient.withUnsafeMutableBufferPointer { g in
                (TripletLoss.evaluate(kind, embeddings: e.baseAddress!, labels: labels, dim: dim, margin: margin, gradient: g.baseAddress),
                 TripletLoss.evaluate(kind, embeddings: e.baseAddress!, labels: labels, dim: dim, margin: margin, gradient: nil))
            }
        }
        XCTAssertTrue(loss == lossOnly || (loss.isNaN && lossOnly.isNaN), "\(kind): the loss depends on whether a gradient is asked")
        return (loss, gradient)
    }

    private func reference(_ kind: TripletLossKind, _ e: [Double], _ labels: [Int32], dim: Int, margin: Float)
        -> TripletReference.Result {
        switch kind {
        case .batchAll: return TripletReference.batchAll(e, labels: labels, dim: dim, margin: Double(margin))
        case .batchHard: return TripletReference.batchHard(e, labels: labels, dim: dim, margin: Double(margin), soft: false)
        case .softMargin: return TripletReference.batchHard(e, labels: labels, dim: dim, margin: 0, soft: true)
        }
    }

    /// Relative errors of the loss and of the gradient (by norm) against the brute force, asserted.
    private func compare(_ kind: TripletLossKind, _ e: [Float], _ labels: [Int32], dim: Int, margin: Float, label: String)
        -> (loss: Double, gradient: Double) {
        let result = fast(kind, e, labels, dim: dim, margin: margin)
        let expected = reference(kind, e.map(Double.init), labels, dim: dim, margin: margin)
        let lossError = expected.loss == 0 ? abs(result.loss) : abs(result.loss - expected.loss) / abs(expected.loss)
        XCTAssertLessThanOrEqual(lossError, 1e-10, "\(label): loss \(result.loss) vs \(expected.loss)")
        return (lossError, checkGradient(result.gradient, expected.gradient, label: label))
    }

    /// Float32 rounding of a float64 result: by norm and per element (1e-6 of the largest), and exactly zero
    /// where the reference is all zero.
    private func checkGradient(_ actual: [Float], _ expected: [Double], label: String) -> Double {
        let a = actual.map(Double.init)
        let error = relativeError(a, expected)
        XCTAssertLessThanOrEqual(error, 1e-6, "\(label): gradient by norm")
        XCTAssertLessThanOrEqual(maxDifference(a, expected), 1e-6 * maxAbs(expected), "\(label): gradient element")
        return maxAbs(expected) == 0 ? maxAbs(a) : error
    }

    private func maxAbs(_ x: [Double]) -> Double { x.reduce(0) { max($0, abs($1)) } }
    private func maxDifference(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) } }
}

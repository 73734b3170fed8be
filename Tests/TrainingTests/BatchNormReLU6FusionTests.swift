import Engine
import XCTest

/// BatchNormalization with a fused ReLU6 (the trainer's BN → Clip(0, 6) pairs) against the two kernels composed:
/// each is checked alone against finite differences in the gradient table, so their composition is the reference.
/// Shapes with tails (spatial not a multiple of 8) and several blocks per thread.
final class BatchNormReLU6FusionTests: XCTestCase {
    func testFusedMatchesBatchNormThenReLU6() {
        for (batch, channels, spatial) in [(3, 5, 21), (2, 4, 700), (8, 6, 9)] {
            let s = BatchNormShape(batch: batch, channels: channels, spatial: spatial, epsilon: 1e-3, momentum: 0.999)
            var rng = TestRandom(seed: UInt64(spatial))
            // gamma up to 4 and beta around 3: many outputs clamp on either side of [0, 6].
            let x = (0..<s.count).map { _ in Float(rng.uniform(-2, 3)) }
            let dy = (0..<s.count).map { _ in Float(rng.uniform(-1, 1)) }
            let gamma = (0..<channels).map { _ in Float(rng.uniform(0.5, 4)) }
            let beta = (0..<channels).map { _ in Float(rng.uniform(1, 5)) }
            func run(fused: Bool) -> [[Float]] {
                var y = [Float](repeating: 0, count: s.count), dx = y, dyBN = y
                var mean = [Float](repeating: 0, count: channels), invStd = mean, mm = mean, dgamma = mean, dbeta = mean
                var mv = [Float](repeating: 1, count: channels)
                BatchNormTraining.forward(s, x: x, gamma: gamma, beta: beta, y: &y, mean: &mean, invStd: &invStd, movingMean: &mm,
                                          movingVariance: &mv, besselCorrected: true, relu6: fused, threads: 2)
                if fused {
                    BatchNormTraining.backward(s, x: x, dy: dy, gamma: gamma, mean: mean, invStd: invStd, dx: &dx, dgamma: &dgamma,
                                               dbeta: &dbeta, relu6Beta: beta, threads: 2)
                } else {
                    Relu6Training.forward(x: y, y: &y, count: s.count, threads: 2)
                    Relu6Training.backward(y: y, dy: dy, dx: &dyBN, count: s.count, threads: 2)
                    BatchNormTraining.backward(s, x: x, dy: dyBN, gamma: gamma, mean: mean, invStd: invStd, dx: &dx, dgamma: &dgamma,
                                               dbeta: &dbeta, threads: 2)
                }
                return [y, dx, dgamma, dbeta, mm, mv]
            }
            let fused = run(fused: true), composed = run(fused: false)
            let clamped = composed[0].filter { $0 == 0 || $0 == 6 }.count
            XCTAssertGreaterThan(clamped, s.count / 10, "the case must clamp some outputs")
            XCTAssertLessThan(clamped, s.count * 9 / 10, "the case must leave some outputs inside (0, 6)")
            // The same float operations in the same order: identical bits.
            for (i, name) in ["y", "dx", "dgamma", "dbeta", "moving mean", "moving variance"].enumerated() {
                XCTAssertEqual(fused[i], composed[i], "\(name), \(batch)x\(channels)x\(spatial)")
            }
        }
    }
}

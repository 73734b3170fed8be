import Engine
import XCTest

/// BatchNormalization's training-mode statistics: the saved mean and invStd and the moving averages, against a
/// float64 computation of Keras's update, moving = moving · momentum + stat · (1 − momentum), where the variance
/// folded in is the batch variance times n / (n − 1) when Bessel-corrected.
final class BatchNormStatisticsTests: XCTestCase {
    func testMovingStatisticsFollowKerasUpdate() {
        for momentum in [0.999, 0.9] {
            for bessel in [true, false] {
                check(batch: 3, channels: 5, spatial: 21, momentum: momentum, besselCorrected: bessel, offset: 0)
                check(batch: 2, channels: 3, spatial: 1, momentum: momentum, besselCorrected: bessel, offset: 0)
            }
        }
    }

    /// Values of mean 1000 and spread 1: a one-pass float E[x²] − E[x]² would lose the variance entirely.
    func testStatisticsOfOffsetValuesKeepTheirPrecision() {
        check(batch: 4, channels: 3, spatial: 50, momentum: 0.9, besselCorrected: true, offset: 1000)
    }

    /// Per-channel sums run in a fixed order: 1 and 2 threads give the same bits, forward and backward
    /// (spatial 700: BatchNormTraining takes 2 channels per block, so 5 channels make 3 blocks).
    func testThreadCountDoesNotChangeResults() {
        let s = BatchNormShape(batch: 2, channels: 5, spatial: 700, epsilon: 1e-3, momentum: 0.999)
        var rng = TestRandom(seed: 11)
        let x = (0..<s.count).map { _ in Float(rng.uniform(-2, 3)) }
        let dy = (0..<s.count).map { _ in Float(rng.uniform(-1, 1)) }
        let gamma = (0..<s.channels).map { _ in Float(rng.uniform(0.5, 1.5)) }
        let beta = (0..<s.channels).map { _ in Float(rng.uniform(-1, 1)) }
        func run(threads: Int) -> [[Float]] {
            var y = [Float](repeating: 0, count: s.count), dx = y
            var mean = [Float](repeating: 0, count: s.channels), invStd = mean, mm = mean, dgamma = mean, dbeta = mean
            var mv = [Float](repeating: 1, count: s.channels)
            BatchNormTraining.forward(s, x: x, gamma: gamma, beta: beta, y: &y, mean: &mean, invStd: &invStd,
                                      movingMean: &mm, movingVariance: &mv, besselCorrected: true, threads: threads)
            BatchNormTraining.backward(s, x: x, dy: dy, gamma: gamma, mean: mean, invStd: invStd, dx: &dx,
                                       dgamma: &dgamma, dbeta: &dbeta, threads: threads)
            return [y, mean, invStd, mm, mv, dx, dgamma, dbeta]
        }
        XCTAssertEqual(run(threads: 1), run(threads: 2))
    }

    private func check(batch: Int, channels: Int, spatial: Int, momentum: Double, besselCorrected: Bool, offset: Double) {
        let label = "batch \(batch) spatial \(spatial) momentum \(momentum) bessel \(besselCorrected) offset \(offset)"
        let s = BatchNormShape(batch: batch, channels: channels, spatial: spatial, epsilon: 1e-3, momentum: Float(momentum))
        var rng = TestRandom(seed: UInt64(batch * 1000 + spatial))
        let x = (0..<s.count).map { _ in Float(offset + rng.uniform(-1, 1) * (offset == 0 ? 2 : 1)) }
        let gamma = [Float](repeating: 1, count: channels), beta = [Float](repeating: 0, count: channels)
        let movingMean0 = (0..<channels).map { _ in Float(rng.uniform(-1, 1)) }
        let movingVariance0 = (0..<channels).map { _ in Float(rng.uniform(0.5, 2)) }
        var y = [Float](repeating: 0, count: s.count)
        var mean = [Float](repeating: 0, count: channels), invStd = mean
        var movingMean = movingMean0, movingVariance = movingVariance0
        BatchNormTraining.forward(s, x: x, gamma: gamma, beta: beta, y: &y, mean: &mean, invStd: &invStd,
                                  movingMean: &movingMean, movingVariance: &movingVariance,
                                  besselCorrected: besselCorrected, threads: 2)

        let n = Double(batch * spatial)
        for c in 0..<channels {
            var values: [Double] = []
            for b in 0..<batch { for i in 0..<spatial { values.append(Double(x[(b * channels + c) * spatial + i])) } }
            let m = values.reduce(0, +) / n
            let v = values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / n
            let folded = besselCorrected ? v * n / (n - 1) : v
            let expectedMean = Double(movingMean0[c]) * momentum + m * (1 - momentum)
            let expectedVariance = Double(movingVariance0[c]) * momentum + folded * (1 - momentum)
            assertClose(Double(mean[c]), m, 1e-7, "\(label): mean of channel \(c)")
            assertClose(Double(invStd[c]), 1 / (v + 1e-3).squareRoot(), 2e-6, "\(label): invStd of channel \(c)")
            assertClose(Double(movingMean[c]), expectedMean, 1e-6, "\(label): moving mean of channel \(c)")
            assertClose(Double(movingVariance[c]), expectedVariance, 1e-6, "\(label): moving variance of channel \(c)")
        }
    }

    /// |actual − expected| ≤ relative · max(1, |expected|).
    private func assertClose(_ actual: Double, _ expected: Double, _ relative: Double, _ message: String) {
        XCTAssertLessThanOrEqual(abs(actual - expected), relative * max(1, abs(expected)), "\(message): \(actual) vs \(expected)")
    }
}

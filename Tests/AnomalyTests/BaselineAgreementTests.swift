import Foundation
import XCTest
@testable import Anomaly

/// Kizuki's baselines equal scikit-learn's on the reference split (tools/baselines_reference.py, written by
/// `make fixtures`): raw-pixel nearest neighbour (NearestNeighbors, k = 1 and 3) and PCA reconstruction
/// (PCA with an exact SVD; N − 1 components at 50 anchors) at every anchor count. Per-image scores of a
/// fixed subset agree within 1e-4, AUCs over all 2,000 test images within 1e-6.
///
/// Kizuki starts from float32 pixels / 255 (what the model sees), scikit-learn from float64: scores differ by
/// about 1e-8, far inside 1e-4; an AUC moves by 1e-6 only if that were to swap a normal and an anomalous score.
final class BaselineAgreementTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".cache/fixtures/baselines.json")

    struct Reference: Decodable {
        struct Raw: Decodable { var anchors: Int; var k: Int; var auc: Double; var scores: [Double] }
        struct PCA: Decodable { var anchors: Int; var components: Int; var auc: Double; var scores: [Double] }
        var normal: Int
        var anomaly: Int
        var n_test: Int
        var pca_components: Int
        var subset: [Int]
        var raw_pixels: [Raw]
        var pca: [PCA]
    }

    func load() throws -> (Reference, FashionMNIST.Experiment) {
        guard FileManager.default.fileExists(atPath: Self.fixture.path) else {
            throw XCTSkip("baselines fixture missing: run `make fixtures`")
        }
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: Self.fixture))
        let split = try FashionMNIST.experiment(normal: reference.normal, anomaly: reference.anomaly, from: FashionMNIST.directory(nil))
        XCTAssertEqual(split.test.count, reference.n_test)
        XCTAssertFalse(reference.raw_pixels.isEmpty)
        XCTAssertFalse(reference.pca.isEmpty)
        return (reference, split)
    }

    func compare(_ what: String, kizuki: [Double], labels: [Int], subset: [Int], scores: [Double], auc: Double) throws {
        var worst = 0.0
        for (i, want) in zip(subset, scores) { worst = max(worst, abs(kizuki[i] - want)) }
        let ours = try ROC.auc(scores: kizuki, labels: labels)
        print("\(what): AUC Kizuki \(ours), scikit-learn \(auc); largest score difference \(worst)")
        XCTAssertLessThanOrEqual(worst, 1e-4, what)
        XCTAssertEqual(ours, auc, accuracy: 1e-6, what)
    }

    func testRawPixelsMatchScikitLearn() throws {
        let (reference, split) = try load()
        for run in reference.raw_pixels {
            let baseline = try RawPixelNearestNeighbors(anchors: split.anchors.prefix(run.anchors))
            try compare("raw pixels, \(run.anchors) anchors, k = \(run.k)", kizuki: baseline.scores(split.test, k: run.k),
                        labels: split.test.labels, subset: reference.subset, scores: run.scores, auc: run.auc)
        }
    }

    func testPCAReconstructionMatchesScikitLearn() throws {
        let (reference, split) = try load()
        XCTAssertTrue(reference.pca.contains { $0.components < reference.pca_components }, "the fixture should cover N - 1 components")
        for run in reference.pca {
            let baseline = try PCAReconstruction(anchors: split.anchors.prefix(run.anchors), components: reference.pca_components)
            XCTAssertEqual(baseline.componentCount, run.components)
            XCTAssertEqual(baseline.isReduced, run.components < reference.pca_components)
            try compare("PCA-\(run.components), \(run.anchors) anchors", kizuki: baseline.scores(split.test),
                        labels: split.test.labels, subset: reference.subset, scores: run.scores, auc: run.auc)
        }
    }

    /// What `Evaluation.run` reports beside the model is what the two baselines give on their own.
    func testEvaluateCombinesBoth() throws {
        let (reference, split) = try load()
        let run = try XCTUnwrap(reference.pca.min { $0.anchors < $1.anchors })
        let raw = try XCTUnwrap(reference.raw_pixels.first { $0.anchors == run.anchors && $0.k == 1 })
        let aucs = try Baselines.evaluate(anchors: split.anchors.prefix(run.anchors), test: split.test, k: 1,
                                          pcaComponents: reference.pca_components)
        XCTAssertEqual(aucs.rawPixels, raw.auc, accuracy: 1e-6)
        XCTAssertEqual(aucs.pca, run.auc, accuracy: 1e-6)
        XCTAssertEqual(aucs.pcaComponents, run.components)
    }
}

/// The baselines on small made-up images, without data or fixtures.
final class BaselineTests: XCTestCase {
    /// 4 x 4 images with pixels on a few known directions, so every score can be worked out by hand.
    func images(_ rows: [[Float]]) -> ImageSet { ImageSet(height: 4, width: 4, pixels: rows.flatMap { $0 }) }

    func basis(_ i: Int, _ v: Float = 1) -> [Float] { (0..<16).map { $0 == i ? v : 0 } }

    func testRawPixelsScoreIsTheDistanceToTheNearestAnchor() throws {
        let anchors = images([basis(0), basis(1, 0.5)])
        let baseline = try RawPixelNearestNeighbors(anchors: anchors, threads: 1)
        let test = images([basis(0, 0.25), basis(2)])
        let k1 = try baseline.scores(test)
        // 0.25 e0 is 0.75 from e0 but √(0.25² + 0.5²) ≈ 0.559 from 0.5 e1; e2 is √2 and √1.25 from them.
        XCTAssertEqual(k1[0], Double(0.3125).squareRoot(), accuracy: 1e-7)
        XCTAssertEqual(k1[1], Double(1.25).squareRoot(), accuracy: 1e-7)
        let k2 = try baseline.scores(test, k: 2)
        XCTAssertEqual(k2[0], (0.75 + Double(0.3125).squareRoot()) / 2, accuracy: 1e-7)
    }

    func testPCAReconstructsTheAnchorsSubspace() throws {
        // Anchors along pixel 0 and pixel 1 around a mean at pixel 5: two components hold all their variation.
        let mean = basis(5, 0.5)
        let offsets: [(Int, Float)] = [(0, 0.2), (0, -0.2), (1, 0.1), (1, -0.1), (0, 0.3), (0, -0.3)]
        let anchors = images(offsets.map { i, v in zip(mean, basis(i, v)).map { $0 + $1 } })
        let pca = try PCAReconstruction(anchors: anchors, components: 2, threads: 1)
        XCTAssertEqual(pca.componentCount, 2)
        XCTAssertFalse(pca.isReduced)
        XCTAssertGreaterThan(pca.explainedVariance[0], pca.explainedVariance[1])
        // In the subspace: nothing left over. Off it by 0.4 along pixel 7: a residual of 0.4.
        let test = images([zip(mean, basis(1, 0.7)).map { $0 + $1 }, zip(mean, basis(7, 0.4)).map { $0 + $1 }])
        let scores = try pca.scores(test)
        XCTAssertEqual(scores[0], 0, accuracy: 1e-7)
        XCTAssertEqual(scores[1], 0.4, accuracy: 1e-7)
        // One component keeps pixel 0's larger variance: pixel 1's offset is then the residual.
        XCTAssertEqual(try PCAReconstruction(anchors: anchors, components: 1, threads: 1).scores(test)[0], 0.7, accuracy: 1e-7)
    }

    func testFewAnchorsUseNMinusOneComponents() throws {
        let anchors = images([basis(0), basis(1), basis(2)])
        let pca = try PCAReconstruction(anchors: anchors, components: 8, threads: 1)
        XCTAssertEqual(pca.componentCount, 2)
        XCTAssertTrue(pca.isReduced)
        // The anchors themselves lie in their own span: residual zero.
        for s in try pca.scores(anchors) { XCTAssertEqual(s, 0, accuracy: 1e-7) }
        // One anchor: no components, the score is the distance to it.
        let single = try PCAReconstruction(anchors: images([basis(3)]), components: 4, threads: 1)
        XCTAssertEqual(single.componentCount, 0)
        XCTAssertEqual(try single.scores(images([basis(3, 4)]))[0], 3, accuracy: 1e-12)
    }

    func testRefusals() throws {
        let anchors = images([basis(0), basis(1)])
        XCTAssertThrowsError(try PCAReconstruction(anchors: anchors, components: 0)) { XCTAssertTrue("\($0)".contains("1 to 16 components"), "\($0)") }
        XCTAssertThrowsError(try PCAReconstruction(anchors: anchors, components: 17)) { XCTAssertTrue("\($0)".contains("got 17"), "\($0)") }
        XCTAssertThrowsError(try PCAReconstruction(anchors: images([]), components: 1)) { XCTAssertTrue("\($0)".contains("at least one anchor"), "\($0)") }
        XCTAssertThrowsError(try RawPixelNearestNeighbors(anchors: images([]))) { XCTAssertTrue("\($0)".contains("at least one anchor"), "\($0)") }
        let other = ImageSet(height: 2, width: 8, pixels: [Float](repeating: 0, count: 16))
        XCTAssertThrowsError(try PCAReconstruction(anchors: anchors, components: 1).scores(other)) { XCTAssertTrue("\($0)".contains("2x8"), "\($0)") }
        XCTAssertThrowsError(try RawPixelNearestNeighbors(anchors: anchors).scores(other)) { XCTAssertTrue("\($0)".contains("2x8"), "\($0)") }
    }
}

import Foundation
@testable import Engine
import OnnxIO
import XCTest

/// Batches shared out to per-thread lanes (BatchLanes.swift) give what one thread gives on the whole batch.
final class BatchLanesTests: XCTestCase {
    func seedModel() throws -> Model { try Model(contentsOf: MicroBatchTests.seed) }

    func images(_ n: Int, seed: UInt64 = 3) throws -> HostTensor {
        var random = TestRandom(seed)
        return try HostTensor(shape: [n, 28, 28, 1], floats: random.floats(n * 784).map { ($0 + 1) / 2 })
    }

    func testLanesMatchOneThreadOnTheWholeBatch() throws {
        try XCTSkipIf(ThreadPool.shared.workerCount == 0, "one CPU: no lanes")
        let model = try seedModel()
        var one = SessionOptions(), two = SessionOptions()
        one.threads = 1
        one.microBatch = nil
        two.threads = 2
        let reference = try Session(model: model, options: one)
        let session = try Session(model: model, options: two)
        for n in [2, 20, 37] {
            let x = try images(n, seed: UInt64(n))
            let want = try reference.run(["input": x])["embedding"]!
            let got = try session.run(["input": x])["embedding"]!
            XCTAssertEqual(got.shape, [n, 128])
            let scale = want.floats.map(abs).max()!
            XCTAssertLessThanOrEqual(zip(got.floats, want.floats).map { abs($0 - $1) }.max()!, 1e-5 * scale, "batch \(n)")
        }
        XCTAssertEqual(session.lanes.count, 2)
    }

    /// Chunks: at most the micro-batch size, a multiple of the threads in number; none for a batch below the threads.
    func testChunking() throws {
        try XCTSkipIf(ThreadPool.shared.workerCount == 0, "one CPU: no lanes")
        var options = SessionOptions()
        options.threads = 2
        options.chunkBytes = 24 << 20  // 16 images of the reference embedder per chunk, whatever the default tuning
        let session = try Session(model: try seedModel(), options: options)
        XCTAssertEqual(session.laneChunks(["input": try images(20)]), [10, 10])
        XCTAssertEqual(session.laneChunks(["input": try images(37)]), [9, 9, 9, 10])
        XCTAssertEqual(session.laneChunks(["input": try images(128)])?.count, 8)
        XCTAssertEqual(session.laneChunks(["input": try images(2)]), [1, 1])
        XCTAssertNil(session.laneChunks(["input": try images(1)]))
        options.batchLanes = false
        XCTAssertNil(try Session(model: try seedModel(), options: options).laneChunks(["input": try images(20)]))
    }

    /// A wrong feed is named with the whole batch's shape, and the session still runs afterwards.
    func testBadFeedIsReportedForTheWholeBatch() throws {
        try XCTSkipIf(ThreadPool.shared.workerCount == 0, "one CPU: no lanes")
        var options = SessionOptions()
        options.threads = 2
        let session = try Session(model: try seedModel(), options: options)
        let bad = try HostTensor(shape: [6, 28, 27, 1], floats: [Float](repeating: 0, count: 6 * 28 * 27))
        XCTAssertThrowsError(try session.run(["input": bad])) { XCTAssertTrue("\($0)".contains("[6, 28, 27, 1]"), "\($0)") }
        // A feed of the wrong name is an error, not a crash in the one-image plan that sizes chunks.
        XCTAssertThrowsError(try session.run(["pixels": try images(6)])) { XCTAssertTrue("\($0)".contains("unknown input 'pixels'"), "\($0)") }
        XCTAssertEqual(try session.run(["input": try images(6)])["embedding"]!.shape, [6, 128])
    }
}

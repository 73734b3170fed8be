import Foundation
import Synchronization
import XCTest
@testable import Engine

/// The pool runs every chunk of every job exactly once, whether its threads are spinning, yielding
/// or asleep on the futex, and with several callers at once.
final class ThreadPoolTests: XCTestCase {
    /// Runs `jobs` jobs of varying chunk counts and checks each chunk ran once; `pause` between jobs
    /// lets the workers reach the given phase of their wait (spin < 50 µs, yield < 200 µs, then blocked).
    func runJobs(_ pool: ThreadPool, jobs: Int, pause: useconds_t = 0) {
        let maxChunks = pool.workerCount + 1
        let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: maxChunks)
        defer { counts.deallocate() }
        for job in 0..<jobs {
            let chunks = 1 + job % maxChunks
            counts.initialize(repeating: 0)
            pool.run(chunks: chunks) { c in counts[c] += 1 }  // each chunk writes only its own slot
            XCTAssertEqual(Array(counts), (0..<maxChunks).map { $0 < chunks ? 1 : 0 }, "job \(job) of \(chunks) chunks")
            if pause > 0 { usleep(pause) }
        }
    }

    func testEveryChunkRunsOnceWhateverTheWorkersAreDoing() {
        let pool = ThreadPool(workers: 3)
        runJobs(pool, jobs: 20_000)             // workers spinning
        runJobs(pool, jobs: 200, pause: 100)    // workers yielding
        runJobs(pool, jobs: 100, pause: 2_000)  // workers asleep on the futex
    }

    func testChunksOfUnevenLengthAllFinishBeforeRunReturns() {
        let pool = ThreadPool(workers: 2)
        let done = Atomic<Int>(0)
        for job in 0..<50 {
            pool.run(chunks: 3) { c in
                if c == job % 3 { usleep(3_000) }  // one slow chunk: the caller must block until it ends
                done.add(1, ordering: .relaxed)
            }
            XCTAssertEqual(done.load(ordering: .relaxed), 3 * (job + 1))
        }
    }

    func testConcurrentAndNestedCallers() {
        let pool = ThreadPool(workers: 2)
        let total = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<2_000 {
                pool.run(chunks: 3) { _ in
                    pool.run(chunks: 2) { _ in total.add(1, ordering: .relaxed) }  // nested: runs serially
                }
            }
        }
        XCTAssertEqual(total.load(ordering: .relaxed), 4 * 2_000 * 3 * 2)
    }
}

import Foundation
import OnnxIO
import Synchronization

// Threads on separate images. Splitting every layer of a small CNN across threads costs a barrier per layer (about
// 60 in MobileNetV2) and shares out pieces too small to keep two cores busy; a graph whose images are computed
// independently (MicroBatch.swift) can instead give each thread whole images: one single-threaded session per thread
// (a lane, with its own kernels and memory), claiming chunks of the batch until none is left. Claiming, not a fixed
// share, so a thread the OS has descheduled holds at most one chunk and the others take the rest.

extension Session {
    /// The threads a run can use: those asked for, as far as the pool has them.
    var usableThreads: Int { max(1, min(options.threads, ThreadPool.shared.workerCount + 1)) }

    /// The chunk sizes of a run in lanes, or nil to run on this session: a batch-separable graph, more than one
    /// thread, every input with the same axis 0 of at least one image per thread. Chunks are the micro-batch size
    /// at most, and as many as a multiple of the threads, so every lane gets the same share.
    func laneChunks(_ feeds: [String: HostTensor]) -> [Int]? {
        let threads = usableThreads
        guard options.batchLanes, threads > 1, batchSeparable, !feeds.isEmpty else { return nil }
        let batches = Set(feeds.values.map { $0.shape.first ?? -1 })
        guard batches.count == 1, let n = batches.first, n >= threads, feeds.values.allSatisfy({ $0.shape.count >= 2 }) else { return nil }
        let most = options.microBatch == nil ? n : imagesPerChunk(feeds)
        let count = min(n, (n + most * threads - 1) / (most * threads) * threads)
        return (0..<count).map { n * ($0 + 1) / count - n * $0 / count }
    }

    /// Runs chunks of the batch on the lanes, each on one thread, and joins their outputs (the caller holds `lock`).
    func runInLanes(_ feeds: [String: HostTensor], _ chunks: [Int]) throws -> [String: HostTensor] {
        // Errors name the whole batch's shapes and flat indices, not a chunk's.
        try checkFeeds(feeds)
        if options.checkFinite { try checkFeedsFinite(feeds) }
        let threads = usableThreads
        if lanes.count < threads {
            var single = options
            single.threads = 1
            single.batchLanes = false
            lanes += try (lanes.count..<threads).map { _ in try Session(model: model, options: single, graph: graph, constants: constants) }
        }
        let starts = chunks.indices.map { chunks[..<$0].reduce(0, +) }
        var results = [Result<[String: HostTensor], Error>?](repeating: nil, count: chunks.count)
        let next = Atomic<Int>(0)
        results.withUnsafeMutableBufferPointer { slots in
            ThreadPool.shared.run(chunks: threads) { lane in
                while true {
                    let c = next.add(1, ordering: .relaxed).oldValue
                    guard c < chunks.count else { return }
                    slots[c] = Result { try lanes[lane].run(Session.images(starts[c]..<starts[c] + chunks[c], of: feeds)) }
                }
            }
        }
        let outputs = try results.map { try $0!.get() }
        if options.profile { mergeLaneProfiles(threads) }
        return try Session.concatenate(outputs, chunks) ?? runWhole(feeds)
    }

    /// The lanes' op times, summed over the lanes and divided by their number (they ran side by side), added to this
    /// session's profile.
    private func mergeLaneProfiles(_ threads: Int) {
        for lane in lanes {
            for (op, entry) in lane.profile {
                let seen = profile[op] ?? (0, 0)
                profile[op] = (seen.seconds + entry.seconds / Double(threads), seen.calls + entry.calls)
            }
            lane.resetProfile()
        }
    }
}

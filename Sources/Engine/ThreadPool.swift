import Foundation
import Synchronization

/// A persistent pool for data-parallel loops. `run(chunks:)` hands chunk 0 to the calling thread and
/// chunk i to worker i-1, then waits for all of them: no dispatch queue, no allocation per call.
///
/// Kernels call it dozens of times per image with work of 10–100 µs, so waking sleeping threads
/// each time would cost more than the work. Workers therefore spin for a short while after a job
/// (long enough to span the gap between two kernels of one run) before sleeping on a condition variable.
final class ThreadPool: @unchecked Sendable {
    static let shared = ThreadPool(workers: max(0, ProcessInfo.processInfo.activeProcessorCount - 1))

    let workerCount: Int
    private let generation = Atomic<Int>(0)
    private let remaining = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    /// The current job; written by the caller before `generation` is released, read by workers after acquiring it.
    private var job: ((Int) -> Void)?
    private var chunks = 0
    /// One caller at a time: sessions may run on several threads.
    private let callerLock = NSLock()

    /// How long an idle worker spins before sleeping. Measured on the seed model at batch 1 with
    /// 2 threads: ~20,000 spins (a few µs) let workers fall asleep between kernels (1.79 ms per image);
    /// spinning 2 ms keeps them awake through a whole run (1.41 ms).
    private static let spinNanoseconds: UInt64 = 200_000

    init(workers: Int) {
        workerCount = workers
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        for index in 0..<workers {
            let thread = Thread { [unowned self] in self.work(index: index + 1) }
            thread.name = "kizuki-worker-\(index + 1)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Runs `body(c)` for c in 0..<chunks, chunk c on its own thread (chunks must be at most workers + 1).
    func run(chunks count: Int, _ body: (Int) -> Void) {
        precondition(count <= workerCount + 1, "more chunks than threads")
        if count <= 1 { if count == 1 { body(0) }; return }
        // A nested call (from inside a chunk) or a second session running at the same time runs serially.
        guard callerLock.try() else {
            for c in 0..<count { body(c) }
            return
        }
        defer { callerLock.unlock() }
        withoutActuallyEscaping(body) { escaping in
            job = escaping
            chunks = count
            remaining.store(count - 1, ordering: .relaxed)
            // Sequentially consistent with the worker's sleepers.add / generation.load (a Dekker pair):
            // either the caller sees the sleeper or the sleeper sees the new generation.
            generation.add(1, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(&mutex)
                pthread_cond_broadcast(&condition)
                pthread_mutex_unlock(&mutex)
            }
            escaping(0)
            while remaining.load(ordering: .acquiring) > 0 {}  // the atomic load is the wait
            job = nil
        }
    }

    private func work(index: Int) {
        var seen = 0
        while true {
            var spins = 0
            var spinStart = DispatchTime.now().uptimeNanoseconds
            var current = generation.load(ordering: .acquiring)
            while current == seen {
                spins += 1
                // Reading the clock costs ~20 ns: look at it once every 1024 spins.
                if spins & 1023 == 0 && DispatchTime.now().uptimeNanoseconds - spinStart >= ThreadPool.spinNanoseconds {
                    pthread_mutex_lock(&mutex)
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen {
                        pthread_cond_wait(&condition, &mutex)
                    }
                    sleepers.subtract(1, ordering: .relaxed)
                    pthread_mutex_unlock(&mutex)
                    spins = 0
                    spinStart = DispatchTime.now().uptimeNanoseconds
                }
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            if index < chunks {
                job!(index)
                remaining.subtract(1, ordering: .releasing)
            }
        }
    }
}

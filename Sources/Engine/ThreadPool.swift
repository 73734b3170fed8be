import CSync
import Foundation
import Synchronization

/// A persistent pool for data-parallel loops. `run(chunks:)` publishes a job of `chunks` pieces; the
/// calling thread and the workers claim pieces one at a time until none is left, then the caller
/// waits for the pieces others are still running. No dispatch queue, no allocation per call.
///
/// Kernels call it dozens of times per image with work of 10–100 µs, so waking sleeping threads each
/// time would cost more than the work: waiting threads first spin, then yield the CPU, and only then
/// block on a futex (`Waiting`). Claiming, rather than handing chunk i to worker i, matters when the
/// machine is busy: a worker the OS has descheduled holds no piece, the caller runs it instead of
/// waiting a whole time slice for that worker to come back.
final class ThreadPool: @unchecked Sendable {
    static let shared = ThreadPool(workers: max(0, ProcessInfo.processInfo.activeProcessorCount - 1))

    let workerCount: Int
    /// The current job: generation (bits 32–63), chunk count (16–31), next unclaimed chunk (0–15).
    /// A claim is a compare-and-swap on the whole word, so a late worker can never claim a chunk of
    /// a job other than the one it saw: the generation would differ.
    private let ticket = Atomic<UInt64>(0)
    /// Chunks of the current job not finished yet.
    private let remaining = Atomic<Int>(0)
    /// Address of the current job's closure (valid while the job has unfinished chunks).
    private let job = Atomic<Int>(0)
    /// Workers wait on `workPublished` for a new generation; the caller on `jobFinished` for `remaining` 0.
    private let workPublished = UnsafeMutablePointer<kizuki_event>.allocate(capacity: 1)
    private let jobFinished = UnsafeMutablePointer<kizuki_event>.allocate(capacity: 1)
    private var generation: UInt64 = 0
    /// One caller at a time: sessions may run on several threads.
    private let callerLock = NSLock()

    /// Idle workers stay awake (spinning, then yielding) this long after a job: long enough to span
    /// the gap between two kernels of one run. Measured on the seed model at batch 1 with 2 threads:
    /// falling asleep after a few µs cost 1.79 ms per image against 1.41 ms awake through the run.
    private static let workerWait = Waiting(spinNanoseconds: 50_000, yieldUntilNanoseconds: 200_000)
    /// The caller waits for pieces already running elsewhere: usually a few µs of imbalance; longer means
    /// the thread running them was descheduled, and blocking frees this CPU for it.
    private static let callerWait = Waiting(spinNanoseconds: 20_000, yieldUntilNanoseconds: 100_000)

    init(workers: Int) {
        workerCount = workers
        workPublished.initialize(to: kizuki_event())
        jobFinished.initialize(to: kizuki_event())
        for index in 0..<workers {
            let thread = Thread { self.work() }  // workers keep their pool alive: it lives as long as the process
            thread.name = "kizuki-worker-\(index + 1)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Runs `body(c)` once for each c in 0..<chunks, spread over the caller and the workers
    /// (chunks must be at most workers + 1, and below 65,536).
    func run(chunks count: Int, _ body: (Int) -> Void) {
        precondition(count <= workerCount + 1 && count < 1 << 16, "more chunks than threads")
        if count <= 1 { if count == 1 { body(0) }; return }
        // A nested call (from inside a chunk) or a second session running at the same time runs serially.
        guard callerLock.try() else {
            for c in 0..<count { body(c) }
            return
        }
        defer { callerLock.unlock() }
        withoutActuallyEscaping(body) { escaping in
            var closure = escaping
            withUnsafeMutablePointer(to: &closure) { address in
                job.store(Int(bitPattern: address), ordering: .relaxed)
                remaining.store(count, ordering: .relaxed)
                generation &+= 1
                // Sequentially consistent: pairs with the worker's prepare / re-check in `Waiting.wait`.
                ticket.store((generation & 0xffff_ffff) << 32 | UInt64(count) << 16, ordering: .sequentiallyConsistent)
                kizuki_event_notify_all(workPublished)
                claimChunks(of: ticket.load(ordering: .acquiring))
                ThreadPool.callerWait.wait(on: jobFinished) { remaining.load(ordering: .sequentiallyConsistent) == 0 }
            }
            job.store(0, ordering: .relaxed)
        }
    }

    /// Claims and runs chunks of the job `seen` describes until none is left (or a newer job replaced it).
    private func claimChunks(of seen: UInt64) {
        var current = seen
        while current >> 32 == seen >> 32, current & 0xffff < (current >> 16) & 0xffff {
            let (claimed, found) = ticket.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            guard claimed else { current = found; continue }
            // The claim succeeded on this job's generation, so the job cannot finish (nor its closure
            // go away) before this chunk is counted below.
            let body = UnsafePointer<(Int) -> Void>(bitPattern: job.load(ordering: .relaxed))!
            body.pointee(Int(current & 0xffff))
            if remaining.subtract(1, ordering: .sequentiallyConsistent).newValue == 0 {
                kizuki_event_notify_all(jobFinished)
            }
            current = ticket.load(ordering: .acquiring)
        }
    }

    private func work() {
        var seenGeneration = ticket.load(ordering: .acquiring) >> 32
        while true {
            ThreadPool.workerWait.wait(on: workPublished) {
                ticket.load(ordering: .sequentiallyConsistent) >> 32 != seenGeneration
            }
            let seen = ticket.load(ordering: .acquiring)
            seenGeneration = seen >> 32
            claimChunks(of: seen)
        }
    }
}

/// Spin, then yield, then block: cheap when the awaited event is µs away and the machine is idle, and
/// no CPU stolen from the threads that would make it happen when the machine is busy.
struct Waiting {
    /// Spin with the CPU's pause hint this long...
    let spinNanoseconds: UInt64
    /// ...then call sched_yield until this long has passed, then block on the event.
    let yieldUntilNanoseconds: UInt64

    func wait(on event: UnsafeMutablePointer<kizuki_event>, until done: () -> Bool) {
        let start = DispatchTime.now().uptimeNanoseconds
        var spins = 0
        var yielding = false
        while true {
            if done() { return }
            if yielding { sched_yield() } else { kizuki_cpu_relax() }
            spins += 1
            // Reading the clock costs ~20 ns: while spinning, look at it every 256 spins.
            if yielding || spins & 255 == 0 {
                let elapsed = DispatchTime.now().uptimeNanoseconds &- start
                if elapsed >= yieldUntilNanoseconds { break }
                yielding = elapsed >= spinNanoseconds
            }
        }
        while true {
            let key = kizuki_event_prepare(event)
            if done() { kizuki_event_cancel(event); return }
            kizuki_event_wait(event, key)
        }
    }
}

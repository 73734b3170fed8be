import Anomaly
import Foundation

/// The random source of one trial. Trial `n` of kind `k` under seed `s` always draws the same
/// numbers, whatever ran before it: a driver restarted after a crash picks up at the next trial
/// and the sequence is unchanged.
struct TrialRandom {
    private var generator: SeededGenerator

    init(seed: UInt64, kind: TrialKind, trial: Int) {
        // Mix the three through one SplitMix step each so nearby trials get unrelated streams.
        var mixer = SeededGenerator(seed: seed ^ (UInt64(kind.ordinal) &* 0x9E37_79B9_7F4A_7C15))
        for _ in 0..<2 { _ = mixer.next() }
        generator = SeededGenerator(seed: mixer.next() ^ UInt64(truncatingIfNeeded: trial) &* 0xD6E8_FEB8_6659_FD93)
    }

    mutating func next() -> UInt64 { generator.next() }

    /// Uniform in 0..<n (n > 0).
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }

    mutating func int(in range: ClosedRange<Int>) -> Int { range.lowerBound + below(range.count) }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }

    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    mutating func float(in range: ClosedRange<Float>) -> Float {
        range.lowerBound + Float(Double(next() >> 11) / Double(1 << 53)) * (range.upperBound - range.lowerBound)
    }

    /// Sizes and counts that break arithmetic: zero, negatives, type limits and their neighbours.
    mutating func interestingInt() -> Int64 {
        pick(Self.interestingInts)
    }

    mutating func interestingFloat() -> Float { pick(Self.interestingFloats) }

    /// An interesting value most of the time, otherwise a small one: real models use small sizes.
    mutating func sizeLike() -> Int64 { chance(0.6) ? interestingInt() : Int64(int(in: 0...8)) }

    static let interestingInts: [Int64] = [
        0, 1, -1, 2, -2, 3, 7, 16, 255, 256, 1000, 65_535, 65_536, 1_000_000, 1 << 20, 1 << 24,
        Int64(Int32.max), Int64(Int32.max) + 1, Int64(UInt32.max), 1 << 32, 1 << 40, 1 << 62,
        Int64.max, Int64.max - 1, Int64.min, Int64.min + 1, -(1 << 31), 3_037_000_500,  // ≈ √Int64.max
    ]
    static let interestingFloats: [Float] = [
        0, -0.0, 1, -1, 0.5, 2, 1e-38, .leastNonzeroMagnitude, 1e9, 1e20, 3.4e38, -3.4e38, .nan, .infinity, -.infinity,
        Float(Int32.max), 4_294_967_296, 9.3e18,
    ]
}

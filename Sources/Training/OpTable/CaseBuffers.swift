/// How a case hands the table's arrays to a kernel and gets its results back without a copy or a fresh
/// allocation per call: a timing loop at network sizes then measures the kernel, not the page faults of new
/// 100 MB buffers.

/// Calls `body` with a pointer to the first element of each array (no copies).
func withFloatPointers<R>(_ arrays: [[Float]], _ body: ([UnsafePointer<Float>]) -> R) -> R {
    func bind(_ i: Int, _ pointers: [UnsafePointer<Float>]) -> R {
        if i == arrays.count { return body(pointers) }
        return arrays[i].withUnsafeBufferPointer { bind(i + 1, pointers + [$0.baseAddress!]) }
    }
    return bind(0, [])
}

/// A float array that a case rewrites on every call and keeps between calls. The array handed out shares its
/// storage until the next write: a caller that keeps it gets its own copy then (copy on write).
final class ReusedArray {
    private(set) var array: [Float] = []

    /// Resizes to `count` (contents unspecified), lets `body` write every element, returns the array.
    func write(count: Int, _ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
        if array.count != count { array = [Float](repeating: 0, count: count) }
        array.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
        return array
    }
}

/// What a forward keeps for its backward (BatchNormalization's statistics, ReLU6's output), as the trainer does,
/// tagged with the input buffers it came from. The gradient test and a timing loop call backward on the arrays
/// they just ran forward on, unchanged; a backward on other arrays runs the forward again first. (Arrays
/// mutated in place between the two calls would keep their storage and be taken for the same.)
final class SavedForward {
    private var inputs: [Int] = []

    func remember(_ arrays: [[Float]]) { inputs = identity(arrays) }
    func matches(_ arrays: [[Float]]) -> Bool { inputs == identity(arrays) }

    /// Where each array's storage is, and its length.
    private func identity(_ arrays: [[Float]]) -> [Int] {
        arrays.flatMap { a in [a.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }, a.count] }
    }
}

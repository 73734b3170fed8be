import Foundation
import OnnxIO

// The one place where sizes that model data can make arbitrarily large are computed: element counts,
// byte sizes, and the arithmetic kernels do on dims, pads, repeats and scales before anything is
// allocated. Overflow, negative dims and out-of-range conversions become a `KernelError` marked
// too large (the planner turns it into `EngineError.Kind.tooLarge` naming the node), never a trap.

extension KernelError {
    /// A size that overflows `Int`, or a tensor over the memory budget.
    public static func tooLarge(_ message: String) -> KernelError {
        var e = KernelError(message)
        e.isTooLarge = true
        return e
    }
}

/// `a * b` for sizes; overflow is an error naming `what`.
@inline(__always)
func checkedMul(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws -> Int {
    let (r, overflow) = a.multipliedReportingOverflow(by: b)
    if overflow { throw KernelError.tooLarge("\(what()): \(a) × \(b) overflows") }
    return r
}

/// `a + b` for sizes; overflow is an error naming `what`.
@inline(__always)
func checkedAdd(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws -> Int {
    let (r, overflow) = a.addingReportingOverflow(b)
    if overflow { throw KernelError.tooLarge("\(what()): \(a) + \(b) overflows") }
    return r
}

/// The product of `values` (1 when empty); overflow is an error naming `what`.
func checkedProduct(_ values: [Int], _ what: @autoclosure () -> String) throws -> Int {
    var p = 1
    for v in values {
        let (r, overflow) = p.multipliedReportingOverflow(by: v)
        if overflow { throw KernelError.tooLarge("\(what()): the product of \(values) overflows") }
        p = r
    }
    return p
}

/// The integer a size computed in floating point stands for (`Int(value)`, truncating): NaN, infinities and
/// values beyond any tensor dimension are errors naming `what`, where `Int(_:)` would trap.
func checkedInt(_ value: Double, _ what: @autoclosure () -> String) throws -> Int {
    if value.isNaN { throw KernelError("\(what()) is NaN") }
    guard value.isFinite else { throw KernelError.tooLarge("\(what()) is \(value)") }
    guard abs(value) <= Double(TensorSize.maxDimension) else {
        throw KernelError.tooLarge("\(what()) is \(value), beyond any tensor size")
    }
    return Int(value)
}

/// Size-like values from the model (pads, strides, repeats...): magnitudes beyond any tensor dimension
/// are refused as too large, so sums of a few of them, and of dims, cannot overflow.
func checkSizeValues(_ values: [Int], _ what: @autoclosure () -> String) throws {
    if let v = values.first(where: { $0.magnitude > UInt(TensorSize.maxDimension) }) {
        throw KernelError.tooLarge("\(what()) holds \(v), beyond any tensor size")
    }
}

enum TensorSize {
    /// No axis of a real tensor exceeds 2^48 elements (the address space of current 64-bit CPUs), so any
    /// value beyond it (a scale times a size, a pad, a repeat) is refused as too large; sums of a few such
    /// values never overflow `Int`.
    static let maxDimension = 1 << 48

    /// Bytes of a tensor of `shape` and `dtype` (see `extentBytes` for what is checked).
    static func bytes(_ shape: [Int], _ dtype: DataType) throws -> Int {
        let extent = try extentBytes(shape, dtype)
        return shape.contains(0) || dtype.elementSize == 0 ? 0 : extent
    }

    /// Bytes of the block a shape spans with empty (0) axes counted as 1. Every dim must be non-negative and
    /// this product must fit in `Int`: then every partial product a kernel forms (rows, planes, strides,
    /// per-axis tables) fits too, even for an empty tensor. The budget is checked against it, so an empty
    /// tensor cannot carry axes nobody could allocate a table for.
    static func extentBytes(_ shape: [Int], _ dtype: DataType) throws -> Int {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw KernelError("shape \(shape) has a negative dimension") }
        if let d = shape.first(where: { $0 > maxDimension }) {
            throw KernelError.tooLarge("\(dtype)\(shape) has an axis of \(d) elements, beyond any tensor size")
        }
        var extent = max(dtype.elementSize, 1)
        for d in shape where d > 1 {
            let (r, overflow) = extent.multipliedReportingOverflow(by: d)
            if overflow { throw KernelError.tooLarge("\(dtype)\(shape) has more bytes than a 64-bit size can count") }
            extent = r
        }
        return extent
    }

    /// "3.5 GiB" for messages.
    static func describe(bytes: Int) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var v = Double(bytes), u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(bytes) bytes" : String(format: "%.1f %@", v, units[u])
    }
}

/// The memory the engine may allocate for one plan from sizes the model determines: every inferred
/// value must fit in it alone, and what the plan keeps (folded constants, arena, private buffers, the
/// outputs each run returns) must fit in it together.
struct MemoryBudget {
    let limit: Int
    private(set) var reserved = 0

    init(limit: Int) { self.limit = max(0, limit) }

    /// Checks one tensor (see `TensorSize.bytes`) against the limit; returns its bytes.
    func check(_ shape: [Int], _ dtype: DataType) throws -> Int {
        let extent = try TensorSize.extentBytes(shape, dtype)
        guard extent <= limit else {
            throw KernelError.tooLarge("\(dtype)\(shape) needs \(TensorSize.describe(bytes: extent)), more than "
                + "the memory budget of \(TensorSize.describe(bytes: limit))\(MemoryBudget.hint)")
        }
        return try TensorSize.bytes(shape, dtype)
    }

    /// Adds `bytes` kept by the plan for `what`; over the limit is an error.
    mutating func reserve(_ bytes: Int, for what: @autoclosure () -> String) throws {
        let (total, overflow) = reserved.addingReportingOverflow(bytes)
        guard !overflow, total <= limit else {
            throw EngineError(.tooLarge, "\(what()) needs \(TensorSize.describe(bytes: bytes)) more, beyond the memory budget of "
                + "\(TensorSize.describe(bytes: limit)) (\(TensorSize.describe(bytes: reserved)) already planned)\(MemoryBudget.hint)")
        }
        reserved = total
    }

    static let hint = " (raise it with --memory-limit or SessionOptions.memoryBudget)"

    /// Half of physical memory: room for the model, its inputs and the rest of the process.
    static var defaultLimit: Int {
        let physical = ProcessInfo.processInfo.physicalMemory
        return Int(clamping: physical / 2)
    }
}

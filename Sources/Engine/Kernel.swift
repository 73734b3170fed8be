import Foundation
import OnnxIO

/// An error from the engine: the CLI prints `description` as is.
public struct EngineError: Error, CustomStringConvertible {
    /// `tooLarge`: a size that overflows, or a tensor beyond `SessionOptions.memoryBudget`.
    public enum Kind: Sendable { case unsupported, invalidModel, invalidInput, nodeFailed, nonFinite, tooLarge }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    public var description: String { message }
}

/// An error raised by one kernel; the engine adds the node, its op and its input shapes.
public struct KernelError: Error, CustomStringConvertible {
    public var message: String
    public var isUnsupported: Bool
    /// A size that overflows or does not fit the memory budget (see `KernelError.tooLarge`).
    public var isTooLarge = false
    public init(_ message: String, unsupported: Bool = false) { self.message = message; self.isUnsupported = unsupported }
    public var description: String { message }
}

/// Type and shape of a value at plan time, and its value when known then (a constant).
public struct ValueSpec {
    public var dtype: DataType
    public var shape: [Int]
    public var constant: HostTensor?

    public init(_ dtype: DataType, _ shape: [Int], constant: HostTensor? = nil) {
        self.dtype = dtype
        self.shape = shape
        self.constant = constant
    }
    /// Element count; the planner has checked the shape (`TensorSize`), so the product cannot overflow.
    public var count: Int { shape.reduce(1, *) }
}

/// The inputs of a node at plan time. Omitted optional inputs ("" in the model) are nil.
public struct PlanInputs {
    var specs: [ValueSpec?]
    /// Asks the planner for the run-time value of a graph input (shape inputs in test models).
    var feedValue: (Int) -> HostTensor?
    /// The session's memory budget, for kernels that build tables sized by their output during `infer`.
    var budget: MemoryBudget
    /// The session's thread count (kernels size per-thread scratch by it).
    public var threads: Int

    public var count: Int { specs.count }

    public func has(_ i: Int) -> Bool { i < specs.count && specs[i] != nil }

    public func spec(_ i: Int) throws -> ValueSpec {
        guard i < specs.count, let s = specs[i] else { throw KernelError("input \(i) is required but missing") }
        return s
    }

    public func optional(_ i: Int) -> ValueSpec? { i < specs.count ? specs[i] : nil }

    /// The value of input `i`, which must be known at plan time (an initializer, a folded
    /// constant, or a graph input whose value then keys the plan).
    public func value(_ i: Int) throws -> HostTensor {
        let s = try spec(i)
        if let c = s.constant { return c }
        if let v = feedValue(i) { return v }
        throw KernelError("input \(i) must be a constant (known before running) but is computed at run time", unsupported: true)
    }

    public func optionalValue(_ i: Int) throws -> HostTensor? { has(i) ? try value(i) : nil }

    /// Checks an output shape against the memory budget before `infer` builds anything that size
    /// (the planner checks every inferred output again afterwards).
    public func checkSize(_ shape: [Int], _ dtype: DataType) throws { _ = try budget.check(shape, dtype) }
}

/// Everything a kernel needs while running, beyond its tensors.
public struct RunContext {
    public let threads: Int
    /// Scratch memory of the size the kernel asked for (nil when it asked for none).
    public let scratch: UnsafeMutableRawPointer?

    /// Runs `body` over `0..<count` split into at most `threads` contiguous chunks (each at least
    /// `minChunk` long), on the session's persistent thread pool.
    public func parallelFor(_ count: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        parallelChunks(count, minChunk: minChunk) { _, range in body(range) }
    }

    /// As `parallelFor`, also passing each chunk's index, which is below `maxChunks`: a key to per-thread scratch.
    public func parallelChunks(_ count: Int, minChunk: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        let pool = ThreadPool.shared
        let chunks = max(1, min(maxChunks, count / max(minChunk, 1)))
        if chunks <= 1 { if count > 0 { body(0, 0..<count) }; return }
        pool.run(chunks: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(c, lo..<hi) }
        }
    }

    /// The most chunks `parallelFor` splits work into (the threads asked for, as far as the pool has them).
    public var maxChunks: Int { max(1, min(threads, ThreadPool.shared.workerCount + 1)) }
}

/// One operator of one node. Made once per session from the node (attributes parsed then),
/// planned once per input signature (`infer`, `scratchBytes`), run many times (`run`).
public protocol Kernel: AnyObject {
    /// Output types and shapes. May set `constant` on an output whose value follows from
    /// shapes alone (Shape, Size); the planner folds nodes whose inputs are all constant by running them.
    func infer(_ inputs: PlanInputs) throws -> [ValueSpec]
    /// Scratch bytes needed for these shapes (computed with `checkedMul` and friends: shapes that each fit
    /// can still make a scratch size that overflows).
    func scratchBytes(inputs: [ValueSpec?], outputs: [ValueSpec]) throws -> Int
    /// Computes outputs (already allocated with the inferred shapes) from inputs; nil = omitted input.
    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws
}

extension Kernel {
    public func scratchBytes(inputs: [ValueSpec?], outputs: [ValueSpec]) throws -> Int { 0 }
}

extension Array where Element == TensorRef? {
    /// A required input at run time (presence was checked at plan time).
    @inline(__always) public func at(_ i: Int) -> TensorRef { self[i]! }
}

/// A node and the opset it is read under, with typed attribute accessors that explain bad values.
public struct NodeInfo {
    public let node: Node
    public let opset: Int

    public init(node: Node, opset: Int) { self.node = node; self.opset = opset }

    public func has(_ name: String) -> Bool { node.attribute(name) != nil }

    public func int(_ name: String, _ fallback: Int) throws -> Int { try int(name) ?? fallback }
    public func int(_ name: String) throws -> Int? {
        switch node.attribute(name) {
        case nil: return nil
        case .int(let v)?: return Int(v)
        default: throw KernelError("attribute '\(name)' must be an int")
        }
    }

    public func float(_ name: String, _ fallback: Float) throws -> Float {
        switch node.attribute(name) {
        case nil: return fallback
        case .float(let v)?: return v
        case .int(let v)?: return Float(v)
        default: throw KernelError("attribute '\(name)' must be a float")
        }
    }

    public func ints(_ name: String) throws -> [Int]? {
        switch node.attribute(name) {
        case nil: return nil
        case .ints(let v)?: return v.map { Int($0) }
        default: throw KernelError("attribute '\(name)' must be a list of ints")
        }
    }

    /// A list of size-like ints (pads, strides, kernel sizes...), each within `TensorSize.maxDimension`.
    public func sizes(_ name: String) throws -> [Int]? {
        guard let v = try ints(name) else { return nil }
        try checkSizeValues(v, "attribute '\(name)'")
        return v
    }

    public func floats(_ name: String) throws -> [Float]? {
        switch node.attribute(name) {
        case nil: return nil
        case .floats(let v)?: return v
        default: throw KernelError("attribute '\(name)' must be a list of floats")
        }
    }

    public func string(_ name: String, _ fallback: String) throws -> String {
        switch node.attribute(name) {
        case nil: return fallback
        case .string(let v)?: return String(decoding: v, as: UTF8.self)
        default: throw KernelError("attribute '\(name)' must be a string")
        }
    }

    public func tensor(_ name: String) throws -> HostTensor? {
        switch node.attribute(name) {
        case nil: return nil
        case .tensor(let t)?: return try HostTensor(t)
        default: throw KernelError("attribute '\(name)' must be a tensor")
        }
    }

    /// Refuses an attribute value the kernel does not implement, so the op is reported unsupported.
    public func unsupported(_ what: String) -> KernelError {
        KernelError("\(node.opType) with \(what) is not supported", unsupported: true)
    }
}

/// Normalises a possibly negative axis for a tensor of rank `rank`.
public func normalizeAxis(_ axis: Int, rank: Int) throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0 && a < max(rank, 1) else { throw KernelError("axis \(axis) is out of range for rank \(rank)") }
    return a
}

import Foundation
import OnnxIO

/// 64-byte aligned memory owned by one object; freed with it.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int

    /// Zero-filled memory; a refused allocation (out of memory, or a negative size) is an error, not a trap.
    public init(byteCount: Int) throws {
        var p: UnsafeMutableRawPointer?
        guard byteCount >= 0, posix_memalign(&p, 64, max(byteCount, 64)) == 0, let p else {
            throw EngineError(.tooLarge, "cannot allocate \(TensorSize.describe(bytes: byteCount)) (out of memory)")
        }
        pointer = p
        self.byteCount = byteCount
        memset(pointer, 0, max(byteCount, 64))
    }

    deinit { free(pointer) }
}

/// A tensor owned by the caller or the engine: graph inputs and outputs, constants.
public struct HostTensor: @unchecked Sendable {
    public let dtype: DataType
    public let shape: [Int]
    public let storage: TensorStorage

    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * dtype.elementSize }

    /// Zero-filled tensor. Negative dims and sizes beyond 64-bit arithmetic or memory are errors (`TensorSize`).
    public init(dtype: DataType, shape: [Int]) throws {
        let bytes: Int
        do { bytes = try TensorSize.bytes(shape, dtype) } catch let e as KernelError {
            throw EngineError(e.isTooLarge ? .tooLarge : .invalidInput, "tensor \(e.message)")
        }
        self.dtype = dtype
        self.shape = shape
        self.storage = try TensorStorage(byteCount: bytes)
    }

    public init(shape: [Int], floats: [Float]) throws {
        try self.init(dtype: .float, shape: shape, values: floats)
    }

    public init(shape: [Int], int64s: [Int64]) throws {
        try self.init(dtype: .int64, shape: shape, values: int64s)
    }

    private init<T>(dtype: DataType, shape: [Int], values: [T]) throws {
        try self.init(dtype: dtype, shape: shape)
        guard count == values.count else {
            throw EngineError(.invalidInput, "shape \(shape) holds \(count) values, got \(values.count)")
        }
        values.withUnsafeBytes { if let base = $0.baseAddress { storage.pointer.copyMemory(from: base, byteCount: $0.count) } }
    }

    /// Copies an ONNX tensor; element types below 8 bits and strings are not supported by the engine.
    /// Its data must hold exactly the bytes its dims call for.
    public init(_ tensor: Tensor) throws {
        guard tensor.dataType.isEngineType else {
            throw EngineError(.unsupported, "tensor '\(tensor.name)' has element type \(tensor.dataType), which the engine does not support")
        }
        do { try self.init(dtype: tensor.dataType, shape: tensor.dims) } catch let e as EngineError {
            throw EngineError(e.kind == .tooLarge ? .tooLarge : .invalidModel, "tensor '\(tensor.name)': \(e.message)")
        }
        guard tensor.data.count == byteCount else {
            throw EngineError(.invalidModel, "tensor '\(tensor.name)' of shape \(tensor.dims) (\(tensor.dataType)) needs "
                + "\(byteCount) bytes of data but has \(tensor.data.count)")
        }
        tensor.data.withUnsafeBytes { if let base = $0.baseAddress, byteCount > 0 { storage.pointer.copyMemory(from: base, byteCount: byteCount) } }
    }

    public func onnxTensor(name: String = "") -> Tensor {
        Tensor(name: name, dataType: dtype, dims: shape, data: Data(bytes: storage.pointer, count: byteCount))
    }

    public var ref: TensorRef { TensorRef(dtype: dtype, shape: shape, data: storage.pointer) }

    public func elements<T>(as: T.Type) -> [T] {
        Array(UnsafeBufferPointer(start: storage.pointer.assumingMemoryBound(to: T.self), count: count))
    }
    public var floats: [Float] { elements(as: Float.self) }
    public var int64s: [Int64] { elements(as: Int64.self) }

    /// Integer values of an int64 or int32 tensor (shape inputs such as Reshape's `shape`).
    public func integers() throws -> [Int] {
        switch dtype {
        case .int64: return int64s.map { Int($0) }
        case .int32: return elements(as: Int32.self).map { Int($0) }
        default: throw KernelError("expected an int64 or int32 tensor, got \(dtype)")
        }
    }

    /// Float values of a float32 or float64 tensor (e.g. Resize's `scales`).
    public func doubles() throws -> [Double] {
        switch dtype {
        case .float: return floats.map(Double.init)
        case .double: return elements(as: Double.self)
        default: throw KernelError("expected a float tensor, got \(dtype)")
        }
    }
}

/// What a kernel sees of a tensor while it runs: type, shape and a raw pointer (no ownership).
public struct TensorRef {
    public let dtype: DataType
    public let shape: [Int]
    public let data: UnsafeMutableRawPointer

    public init(dtype: DataType, shape: [Int], data: UnsafeMutableRawPointer) {
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * dtype.elementSize }
    @inline(__always) public var floats: UnsafeMutablePointer<Float> { data.assumingMemoryBound(to: Float.self) }
    @inline(__always) public func typed<T>(_: T.Type) -> UnsafeMutablePointer<T> { data.assumingMemoryBound(to: T.self) }
}

extension DataType {
    /// Bytes per element in the engine (types below 8 bits are not engine types).
    public var elementSize: Int { (bitWidth ?? 0) / 8 }

    /// Element types the engine stores: whole-byte numeric types and bool.
    public var isEngineType: Bool {
        guard let bits = bitWidth else { return false }
        return bits >= 8 && rawValue <= 16 && self != .complex64 && self != .complex128
    }
}

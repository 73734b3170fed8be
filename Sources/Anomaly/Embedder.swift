import Engine
import Foundation
import OnnxIO

/// Runs an embedding model over images in batches: one float32 image input (NHWC [N,H,W,1] or
/// NCHW [N,1,H,W]) and one output [N, D].
public final class Embedder {
    public let session: Session
    public let inputName: String
    public let outputName: String
    public let height: Int
    public let width: Int
    public let channelsLast: Bool
    /// sha256 of the model file: ties an anchor index to the model that made it.
    public let modelSHA256: String

    public init(modelFile url: URL, options: SessionOptions = .init()) throws {
        // A regular file only: Data(contentsOf:) would hang on a FIFO and report errors without the path.
        modelSHA256 = SHA256.hex(try RegularFile(path: url.path, what: "ONNX model").readAll())
        let model = try Model(contentsOf: url)
        session = try Session(model: model, options: options)
        guard session.inputs.count == 1, let input = session.inputs.first else {
            throw DataError(file: url.path, "an embedder has one input; this model has \(session.inputs.count)")
        }
        guard let output = session.outputs.first else { throw DataError(file: url.path, "the model has no outputs") }
        inputName = input.name
        outputName = output.name
        guard let dims = input.type?.shape, dims.count == 4 else {
            throw DataError(file: url.path, "input '\(input.name)' must be 4-D images ([N,H,W,1] or [N,1,H,W])")
        }
        if dims[3].fixedSize == 1, let h = dims[1].fixedSize, let w = dims[2].fixedSize {
            (height, width, channelsLast) = (h, w, true)
        } else if dims[1].fixedSize == 1, let h = dims[2].fixedSize, let w = dims[3].fixedSize {
            (height, width, channelsLast) = (h, w, false)
        } else {
            throw DataError(file: url.path, "input '\(input.name)' shape \(dims) is not one-channel images [N,H,W,1] or [N,1,H,W]")
        }
    }

    /// Embeddings of every image, row-major [count, D]. `progress(done, total)` after each batch.
    public func embed(_ images: ImageSet, batchSize: Int = 64, progress: ((Int, Int) -> Void)? = nil) throws -> (values: [Float], dim: Int) {
        guard images.height == height, images.width == width else {
            throw DataError(file: "", "images are \(images.height)x\(images.width); the model expects \(height)x\(width)")
        }
        var out: [Float] = []
        var dim = 0
        var start = 0
        while start < images.count {
            let n = min(batchSize, images.count - start)
            let batch = try embedBatch(images, range: start..<start + n)
            dim = batch.count / n
            out += batch
            start += n
            progress?(start, images.count)
        }
        return (out, dim)
    }

    /// One batch; the layout of a one-channel image is the same in NHWC and NCHW.
    public func embedBatch(_ images: ImageSet, range: Range<Int>) throws -> [Float] {
        let n = range.count
        let shape = channelsLast ? [n, height, width, 1] : [n, 1, height, width]
        let size = images.imageSize
        let input = try HostTensor(dtype: .float, shape: shape)
        images.pixels.withUnsafeBufferPointer { src in
            input.storage.pointer.copyMemory(from: src.baseAddress! + range.lowerBound * size, byteCount: n * size * 4)
        }
        let result = try session.run([inputName: input])
        guard let y = result[outputName], y.shape.count == 2, y.shape[0] == n else {
            throw DataError(file: "", "output '\(outputName)' has shape \(result[outputName]?.shape ?? []); an embedder returns [N, D]")
        }
        let values = y.floats
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw DataError(file: "", "the model produced \(values[bad]) in the embedding of image \(range.lowerBound + bad / y.shape[1]); run with --check-finite to find the node")
        }
        return values
    }
}

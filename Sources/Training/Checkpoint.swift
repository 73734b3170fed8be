import Anomaly
import Foundation
import OnnxIO

/// A run's folder:
///   checkpoint.onnx   the latest weights and moving statistics, training form (BatchNormalization kept)
///   optimizer.bin     SGD velocities, float32 little-endian, in the order of the trainable parameters
///   checkpoint.json   TrainingState (recipe, epoch, step, generator, history) and the sha256 of both files above
///   model.onnx        the weights of the epoch with the lowest training loss (the same graph; runs for inference)
///   train.json        recipe and per-epoch log; train.log the same as text
/// Files are written beside their final name and renamed, checkpoint.json last: a run killed while saving
/// leaves the previous checkpoint or a set whose hashes do not match, which `load` refuses.
public enum Checkpoint {
    struct Manifest: Codable {
        var format = 1
        var state: TrainingState
        var checkpointSHA256: String
        var optimizerSHA256: String
    }

    public static func save(_ dir: URL, state: TrainingState, model: Model, optimizer: [Float]) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let onnx = try model.serialized()
        let opt = optimizer.withUnsafeBufferPointer { Data(buffer: $0) }
        let manifest = Manifest(state: state, checkpointSHA256: SHA256.hex(onnx), optimizerSHA256: SHA256.hex(opt))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try replace(dir.appendingPathComponent("checkpoint.onnx"), with: onnx)
        try replace(dir.appendingPathComponent("optimizer.bin"), with: opt)
        try replace(dir.appendingPathComponent("checkpoint.json"), with: encoder.encode(manifest))
    }

    public static func load(_ dir: URL) throws -> (state: TrainingState, model: Model, optimizer: [Float]) {
        let json = dir.appendingPathComponent("checkpoint.json")
        guard FileManager.default.fileExists(atPath: json.path) else {
            throw TrainingError("\(dir.path): no checkpoint.json (not a training folder, or no epoch finished yet)")
        }
        let manifest: Manifest
        let data = try RegularFile(path: json.path, what: "checkpoint").readAll()
        do { manifest = try JSONDecoder().decode(Manifest.self, from: data) } catch let error as DecodingError {
            throw TrainingError("\(json.path): not a checkpoint this version of Kizuki reads (\(describe(error)))")
        }
        let onnxURL = dir.appendingPathComponent("checkpoint.onnx"), optURL = dir.appendingPathComponent("optimizer.bin")
        let onnx = try RegularFile(path: onnxURL.path, what: "checkpoint weights").readAll()
        let opt = try RegularFile(path: optURL.path, what: "optimizer state").readAll()
        guard SHA256.hex(onnx) == manifest.checkpointSHA256, SHA256.hex(opt) == manifest.optimizerSHA256 else {
            throw TrainingError("\(dir.path): checkpoint.onnx or optimizer.bin does not match checkpoint.json (a save was interrupted?)")
        }
        guard opt.count % 4 == 0 else { throw TrainingError("\(optURL.path): not a whole number of float32 values") }
        let floats = opt.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        return (manifest.state, try Model(serialized: onnx, file: onnxURL.path), floats)
    }

    /// "missing 'state.epoch'", "'state.step' is not a number": what is wrong, without the decoder's dump.
    static func describe(_ error: DecodingError) -> String {
        func path(_ c: DecodingError.Context, _ key: CodingKey? = nil) -> String {
            (c.codingPath + (key.map { [$0] } ?? [])).map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let c): return "missing '\(path(c, key))'"
        case .typeMismatch(_, let c), .valueNotFound(_, let c): return "'\(path(c))' has the wrong type"
        case .dataCorrupted(let c): return c.codingPath.isEmpty ? "not valid JSON" : "'\(path(c))' is invalid"
        @unknown default: return "unreadable"
        }
    }

    /// Writes `data` next to `url` and renames it into place.
    static func replace(_ url: URL, with data: Data) throws {
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial")
        try data.write(to: temp)
        guard rename(temp.path, url.path) == 0 else {
            throw TrainingError("cannot write \(url.path): \(String(cString: strerror(errno)))")
        }
    }
}

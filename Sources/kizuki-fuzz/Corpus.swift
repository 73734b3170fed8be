import Anomaly
import CZlib
import Foundation
import OnnxIO

/// The seed files every trial mutates, written into `<out>/corpus` once per run (deterministic:
/// the same files for every seed, so a reproducer only needs the corpus beside it).
struct Corpus {
    let folder: URL
    var models: URL { folder.appendingPathComponent("models") }
    var embedder: URL { folder.appendingPathComponent("embedder.onnx") }
    var idx: URL { folder.appendingPathComponent("images-idx3-ubyte") }
    var idxGzip: URL { folder.appendingPathComponent("images-idx3-ubyte.gz") }
    var idxGzipBomb: URL { folder.appendingPathComponent("bomb-idx3-ubyte.gz") }
    var imagesNpy: URL { folder.appendingPathComponent("images.npy") }
    var inputNpy: URL { folder.appendingPathComponent("input.npy") }
    var pngFolder: URL { folder.appendingPathComponent("png") }
    var pngBomb: URL { folder.appendingPathComponent("bomb.png") }
    var index: URL { folder.appendingPathComponent("anchors.kzi") }

    /// Writes the corpus; the anchor index is made by `kizuki index` itself.
    static func create(in folder: URL, kizuki: URL, fashionMNIST: URL) throws -> Corpus {
        let corpus = Corpus(folder: folder)
        let fm = FileManager.default
        try? fm.removeItem(at: folder)
        for sub in ["models", "png", "external/folder.dirx"] {
            try fm.createDirectory(at: folder.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        try OneNodeModels.embedder().save(to: corpus.embedder)
        for (name, model) in OneNodeModels.all() { try model.save(to: corpus.models.appendingPathComponent(name + ".onnx")) }
        try OneNodeModels.embedder().save(to: corpus.models.appendingPathComponent("embedder.onnx"))

        // External data beside a model, and what a hostile location could name instead: a FIFO,
        // a symlink out of the folder, a folder (the model trials swap the location's 11 bytes).
        let external = folder.appendingPathComponent("external")
        try OneNodeModels.externalData().save(to: external.appendingPathComponent("model.onnx"),
                                              externalData: ExternalDataPolicy(thresholdBytes: 16, fileName: "weights.bin"))
        guard mkfifo(external.appendingPathComponent("fifo.pipe.x").path, 0o600) == 0 else { throw FuzzError("mkfifo failed in \(external.path)") }
        try fm.createSymbolicLink(atPath: external.appendingPathComponent("escape.link").path, withDestinationPath: "/etc/passwd")

        // Ten real images (Fashion-MNIST test set when installed, else a seeded pattern).
        let count = 10, side = 28
        var pixels: [UInt8]
        if let test = try? IDXFile(contentsOf: fashionMNIST.appendingPathComponent("t10k-images-idx3-ubyte.gz")) {
            pixels = [UInt8](test.bytes.prefix(count * side * side))
        } else {
            var rng = SeededGenerator(seed: 7)
            pixels = (0..<count * side * side).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        }
        let idxBytes = idxHeader([count, side, side]) + pixels
        try Data(idxBytes).write(to: corpus.idx)
        try gzip(Data(idxBytes), to: corpus.idxGzip)
        // 1.6 GB of zeros behind a header for ten images, in 1.6 MB: one member of 16 MiB of zeros, repeated.
        let scratch = folder.appendingPathComponent("member.gz")
        let zeros = try gzipMember(Data(count: 16 << 20), scratch: scratch)
        var bomb = try gzipMember(Data(idxHeader([count, side, side])), scratch: scratch)
        for _ in 0..<100 { bomb += zeros }
        try bomb.write(to: corpus.idxGzipBomb)

        try Npy.write(Tensor(dataType: .uint8, dims: [count, side, side], data: Data(pixels)), to: corpus.imagesNpy)
        try Npy.write(Tensor(floats: pixels.prefix(2 * side * side).map { Float($0) / 255 }, dims: [2, side, side, 1]), to: corpus.inputNpy)
        for i in 0..<3 {
            let png = try PNG.encodeGray(height: side, width: side, pixels: Array(pixels[i * side * side..<(i + 1) * side * side]))
            try png.write(to: corpus.pngFolder.appendingPathComponent("image\(i).png"))
        }
        // 8192 x 8192 grey pixels (64 MiB decoded, 256 MiB as floats) in a small file.
        try PNG.encodeGray(height: 8192, width: 8192, pixels: [UInt8](repeating: 0, count: 8192 * 8192)).write(to: corpus.pngBomb)

        let made = try Spawn.run(kizuki, ["index", corpus.embedder.path, "--images", corpus.idx.path, "--out", corpus.index.path, "--quiet"],
                                 limits: nil, timeout: 60, log: folder.appendingPathComponent("index.log"))
        guard made.status == .exited(0) else { throw FuzzError("kizuki index failed making the seed index (see \(folder.path)/index.log)") }
        return corpus
    }

    static func idxHeader(_ dims: [Int]) -> [UInt8] {
        [0, 0, 0x08, UInt8(dims.count)] + dims.flatMap { d in (0..<4).map { UInt8(truncatingIfNeeded: d >> (8 * (3 - $0))) } }
    }

    /// A gzip member holding `data` (members concatenated make one valid gzip stream).
    static func gzipMember(_ data: Data, scratch: URL) throws -> Data {
        guard let gz = gzopen(scratch.path, "wb9") else { throw FuzzError("cannot write \(scratch.path)") }
        _ = data.withUnsafeBytes { gzwrite(gz, $0.baseAddress, UInt32($0.count)) }
        gzclose(gz)
        defer { try? FileManager.default.removeItem(at: scratch) }
        return try Data(contentsOf: scratch)
    }

    static func gzip(_ data: Data, to url: URL) throws {
        try gzipMember(data, scratch: url.appendingPathExtension("part")).write(to: url)
    }
}

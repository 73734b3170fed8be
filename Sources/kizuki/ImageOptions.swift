import Anomaly
import ArgumentParser
import Foundation

/// How images are found and prepared; shared by embed, index, score, calibrate and eval.
struct ImageOptions: ParsableArguments {
    @Option(help: "Fashion-MNIST folder (default: $KIZUKI_DATA, else /usr/share/datasets/fashion-mnist).")
    var data: String?

    @Option(help: "Resize images of another size to the model's: nearest or bilinear (default: refuse).")
    var resize: ImageSet.ResizeMode?

    @Option(help: "Images per batch.") var batch = 64

    @Flag(help: "No progress bar.") var quiet = false

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
    }

    func load(_ source: String, for embedder: Embedder) throws -> ImageSet {
        if !source.hasPrefix("fmnist:") { try FileAction.checkInput(source, option: "--images", folderAllowed: true) }
        return try ImageSource(parsing: source).load(dataDirectory: data, height: embedder.height, width: embedder.width, resize: resize,
                                                     memoryLimit: embedder.session.options.memoryBudget)
    }

    func embed(_ images: ImageSet, with embedder: Embedder, label: String) throws -> (values: [Float], dim: Int) {
        let progress = Progress(label, quiet: quiet)
        return try embedder.embed(images, batchSize: batch) { progress.update($0, $1) }
    }
}

/// The embedding model of embed, index, score, calibrate and eval, its path checked first.
func openEmbedder(_ model: String, _ engine: EngineOptions) throws -> Embedder {
    try FileAction.checkInput(model, option: "the model")
    return try Embedder(modelFile: URL(fileURLWithPath: model), options: engine.sessionOptions)
}

extension ImageSet.ResizeMode: ExpressibleByArgument {}

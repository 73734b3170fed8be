import Anomaly
import ArgumentParser
import Engine
import Foundation
import OnnxIO

struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Embed images with a model and save the embeddings as .npy [N, D].")
    @Argument(help: "The embedding model (.onnx).") var model: String
    @Option(help: "Images: fmnist:SPLIT[:CLASSES], an IDX file, a folder of PNGs, or a .npy.") var images: String
    @Option(help: "Output .npy file.") var out: String
    @OptionGroup var imageOptions: ImageOptions
    @OptionGroup var engine: EngineOptions

    func run() throws {
        do {
            let output = try OutputFile(out, kind: .npy, option: "--out", inputs: [("the model", model), ("--images", images)])
            let embedder = try openEmbedder(model, engine)
            let set = try imageOptions.load(images, for: embedder)
            let (values, dim) = try imageOptions.embed(set, with: embedder, label: "embed")
            try output.write(Npy.encode(Tensor(floats: values, dims: [set.count, dim])))
            print("wrote \(set.count) x \(dim) embeddings to \(out)")
        } catch let e as ExitCode { throw e } catch { throw fail(error) }
    }
}

struct Index: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Build an anchor index from normal images.")
    @Argument(help: "The embedding model (.onnx).") var model: String
    @Option(help: "Normal images (e.g. fmnist:train:7).") var images: String
    @Option(help: "Output index file (.kzi).") var out: String
    @Option(help: "Use N anchors: the first N, or a random N with --seed (default: all).") var anchors: Int?
    @Option(help: "Seed for a random anchor subset.") var seed: UInt64?
    @OptionGroup var imageOptions: ImageOptions
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        if let anchors, anchors < 1 { throw ValidationError("--anchors must be at least 1 (got \(anchors))") }
    }

    func run() throws {
        do {
            let output = try OutputFile(out, kind: .index, option: "--out", inputs: [("the model", model), ("--images", images)])
            let embedder = try openEmbedder(model, engine)
            let all = try imageOptions.load(images, for: embedder)
            let chosen = try AnchorIndex.select(count: all.count, n: anchors, seed: seed)
            let (values, dim) = try imageOptions.embed(all.subset(chosen), with: embedder, label: "anchors")
            let selection = seed.map { "random \(chosen.count) of \(all.count), seed \($0)" } ?? "first \(chosen.count) of \(all.count)"
            let index = AnchorIndex(header: .init(modelSHA256: embedder.modelSHA256, modelFile: model, count: chosen.count, dim: dim,
                                                  preprocessing: AnchorIndex.preprocessing, source: images, selection: selection,
                                                  threshold: nil),
                                    embeddings: values)
            try output.write { try index.write(to: $0) }
            print("wrote \(out): \(chosen.count) anchors x \(dim), \(selection), model sha256 \(embedder.modelSHA256.prefix(12))…")
        } catch let e as ExitCode { throw e } catch { throw fail(error) }
    }
}

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Score images against an anchor index: distance to the nearest anchors, and a verdict.")
    @Argument(help: "The embedding model (.onnx) that made the index.") var model: String
    @Option(help: "Anchor index (.kzi).") var index: String
    @Option(help: "Images to score.") var images: String
    @Option(help: "Mean distance to the k nearest anchors (1 = the reference).") var k = 1
    @Option(help: "Threshold: score > T is an anomaly (default: the index's calibrated threshold).") var threshold: Double?
    @Option(help: "A threshold file written by `kizuki calibrate --out`.") var thresholdFile: String?
    @Option(help: "csv (RFC 4180) or jsonl.") var format: ScoreFormat = .csv
    @OptionGroup var imageOptions: ImageOptions
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        guard k >= 1 else { throw ValidationError("--k must be at least 1 (got \(k))") }
        if let threshold, !threshold.isFinite { throw ValidationError("--threshold must be a finite number (got \(threshold))") }
        if threshold != nil && thresholdFile != nil { throw ValidationError("give --threshold or --threshold-file, not both") }
    }

    func run() throws {
        do {
            try FileAction.checkInput(index, option: "--index")
            let embedder = try openEmbedder(model, engine)
            let anchorIndex = try AnchorIndex.load(from: URL(fileURLWithPath: index), for: embedder)
            try checkAnchors(k: k, skipSelf: false, in: anchorIndex, file: index)
            var limit = threshold ?? anchorIndex.header.threshold?.value
            if let thresholdFile {
                try FileAction.checkInput(thresholdFile, option: "--threshold-file")
                limit = try Threshold.load(from: URL(fileURLWithPath: thresholdFile), for: anchorIndex).value
            }
            let set = try imageOptions.load(images, for: embedder)
            let (values, _) = try imageOptions.embed(set, with: embedder, label: "score")
            let knn = try NearestNeighbors(anchors: anchorIndex.embeddings, dim: anchorIndex.header.dim, threads: engine.threads)
            let scores = try knn.scores(values, k: k)
            if let header = format.header(withVerdict: limit != nil) { print(header) }
            for (i, s) in scores.enumerated() {
                let name = i < set.names.count ? set.names[i] : ""
                print(try format.format(.init(index: i, name: name, score: s, verdict: limit.map { s > $0 ? "anomaly" : "normal" })))
            }
            if let limit { Progress.note("rule: score > \(limit) => anomaly", quiet: imageOptions.quiet) }
        } catch let e as ExitCode { throw e } catch { throw fail(error) }
    }
}

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Choose a threshold from normal images only, for a target false-positive rate, and store it in the index.")
    @Argument(help: "The embedding model (.onnx) that made the index.") var model: String
    @Option(help: "Anchor index (.kzi); the threshold is stored in it.") var index: String
    @Option(help: "Held-out normal images (default: the anchors themselves, each scored against the others).") var images: String?
    @Option(help: "Target false-positive rate on normal images.") var fpr = 0.01
    @Option(help: "Mean distance to the k nearest anchors.") var k = 1
    @Option(help: "Also write the threshold to this JSON file.") var out: String?
    @OptionGroup var imageOptions: ImageOptions
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        guard fpr >= 0 && fpr < 1 else { throw ValidationError("--fpr must be in [0, 1), got \(fpr)") }
        guard k >= 1 else { throw ValidationError("--k must be at least 1 (got \(k))") }
    }

    /// Both files are checked before any work, and each is replaced atomically: the threshold file
    /// first, so a failure leaves the index as it was (the threshold's index id does not change).
    func run() throws {
        do {
            try FileAction.checkInput(model, option: "the model")
            try FileAction.checkInput(index, option: "--index")
            let inputs = [("the model", model)] + (images.map { [("--images", $0)] } ?? [])
            let thresholdOutput = try out.map { try OutputFile($0, kind: .thresholdJSON, option: "--out", inputs: inputs + [("--index", index)]) }
            let indexOutput = try OutputFile(index, kind: .index, option: "--index", inputs: inputs)
            let url = URL(fileURLWithPath: index)
            let embedder = try openEmbedder(model, engine)
            var anchorIndex = try AnchorIndex.load(from: url, for: embedder)
            try checkAnchors(k: k, skipSelf: images == nil, in: anchorIndex, file: index)
            let knn = try NearestNeighbors(anchors: anchorIndex.embeddings, dim: anchorIndex.header.dim, threads: engine.threads)
            let scores: [Double]
            let what: String
            if let images {
                let set = try imageOptions.load(images, for: embedder)
                scores = try knn.scores(try imageOptions.embed(set, with: embedder, label: "calibrate").values, k: k)
                what = images
            } else {
                scores = try knn.scores(anchorIndex.embeddings, k: k, skipSelf: true)
                what = "the index's \(anchorIndex.header.count) anchors, leave-one-out"
            }
            let value = try ROC.threshold(normalScores: scores, fpr: fpr)
            let above = scores.filter { $0 > value }.count
            let threshold = Threshold(value: value, targetFPR: fpr, rule: "score > \(value) => anomaly", calibratedOn: what,
                                      normalCount: scores.count, indexID: anchorIndex.id)
            anchorIndex.header.threshold = threshold
            if let thresholdOutput {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try thresholdOutput.write(encoder.encode(threshold))
            }
            try indexOutput.write { [anchorIndex] in try anchorIndex.write(to: $0) }
            print("threshold \(value) (k = \(k)): \(above) of \(scores.count) normal images (\(String(format: "%.2f", 100 * Double(above) / Double(scores.count)))%) score above it; target FPR \(fpr)")
            print("rule: \(threshold.rule)")
            print("stored in \(index)" + (out.map { " and \($0)" } ?? ""))
        } catch let e as ExitCode { throw e } catch { throw fail(error) }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reproduce the reference experiment: AUC and ms per image for several anchor counts, and an HTML report.")
    @Argument(help: "The embedding model (.onnx).") var model: String = "models/kizuki-v1/model.onnx"
    @Option(help: "Normal class (Fashion-MNIST label).") var normal = 7
    @Option(help: "Anomaly class (never seen in training).") var anomaly = 9
    @Option(help: "Anchor counts, comma separated (the first N normal train images).") var anchors = "6000,3000,1000,500,100,50"
    @Option(name: .customLong("batch"), help: "Batch sizes to time, comma separated.") var batches = "1,20"
    @Option(help: "Mean distance to the k nearest anchors.") var k = 1
    @Option(help: "False-positive rate for the report's threshold (calibrated on the anchors, leave-one-out).") var fpr = 0.01
    @Option(help: "Write the HTML report here.") var report: String?
    @Option(help: "Write per-image scores (float64 .npy) here.") var scoresOut: String?
    @Option(help: "Fashion-MNIST folder (default: $KIZUKI_DATA, else /usr/share/datasets/fashion-mnist).") var data: String?
    @Flag(help: "Leave out the baselines (raw-pixel nearest neighbour and PCA reconstruction, computed without the model).")
    var noBaselines = false
    @Option(help: ArgumentHelp("Principal components of the PCA reconstruction baseline (default: \(Eval.defaultPCAComponents)); with only N anchors, N - 1.",
                               valueName: "N"))
    var pcaComponents: Int?
    @Flag(help: "No progress messages.") var quiet = false
    @OptionGroup var engine: EngineOptions

    static let defaultPCAComponents = 64

    func list(_ s: String, _ name: String) throws -> [Int] {
        let parts = s.split(separator: ",", omittingEmptySubsequences: false)
        let v = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !v.isEmpty, v.count == parts.count, v.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--\(name) takes positive integers separated by commas, got '\(s)'")
        }
        return v
    }

    func validate() throws {
        let counts = try list(anchors, "anchors")
        _ = try list(batches, "batch")
        let classes = FashionMNIST.classNames.indices
        guard classes.contains(normal), classes.contains(anomaly) else {
            throw ValidationError("--normal and --anomaly are Fashion-MNIST labels \(classes.lowerBound)...\(classes.upperBound - 1) (got \(normal) and \(anomaly))")
        }
        guard normal != anomaly else { throw ValidationError("--normal and --anomaly must differ") }
        guard fpr >= 0 && fpr < 1 else { throw ValidationError("--fpr must be in [0, 1), got \(fpr)") }
        guard k >= 1 else { throw ValidationError("--k must be at least 1 (got \(k))") }
        if let pcaComponents {
            guard !noBaselines else { throw ValidationError("--pca-components sets up a baseline that --no-baselines leaves out: give one of them") }
            // Fashion-MNIST images are 28x28: more components than pixels do not exist.
            guard (1...28 * 28).contains(pcaComponents) else {
                throw ValidationError("--pca-components must be between 1 and 784 (the pixels of a 28x28 image), got \(pcaComponents)")
            }
        }
        // Every anchor count is scored with k neighbours; the threshold leaves each anchor out of its own.
        guard let fewest = counts.min(), let most = counts.max(), k <= fewest, k < most else {
            throw ValidationError("--k \(k) needs at least \(k) anchors in every count and \(k) + 1 in the largest; --anchors is \(anchors)")
        }
    }

    func run() throws {
        do {
            let counts = try list(anchors, "anchors"), sizes = try list(batches, "batch")
            let reportOutput = try report.map { try OutputFile($0, kind: .html, option: "--report", inputs: [("the model", model)]) }
            let scoresOutput = try scoresOut.map { path in
                try OutputFile(path, kind: .npy, option: "--scores-out", inputs: [("the model", model)] + (report.map { [("--report", $0)] } ?? []))
            }
            let embedder = try openEmbedder(model, engine)
            let split = try FashionMNIST.experiment(normal: normal, anomaly: anomaly, from: FashionMNIST.directory(data))
            let evaluation = try Evaluation.run(embedder: embedder, anchors: split.anchors, test: split.test, anchorCounts: counts,
                                                batches: sizes, k: k, fpr: fpr,
                                                baselinePCAComponents: noBaselines ? nil : pcaComponents ?? Eval.defaultPCAComponents) {
                Progress.note($0, quiet: quiet)
            }
            print("Fashion-MNIST, normal = \(FashionMNIST.classNames[normal]) (\(normal)), anomaly = \(FashionMNIST.classNames[anomaly]) (\(anomaly)); \(split.test.count) test images; k = \(k); threads \(engine.threads)")
            print(evaluation.table(batches: sizes))
            if let t = evaluation.threshold, let rates = evaluation.rates(threshold: t) {
                print(String(format: "threshold %.6g (FPR %.2f on the anchors, leave-one-out): test FPR %.3f, TPR %.3f", t, fpr, rates.fpr, rates.tpr))
            }
            if let scoresOutput {
                try scoresOutput.write(Npy.encode(Tensor(dataType: .double, dims: [evaluation.scores.count],
                                                         data: evaluation.scores.withUnsafeBufferPointer { Data(buffer: $0) })))
            }
            if let report, let reportOutput {
                let page = Report(title: "Kizuki anomaly report: \(FashionMNIST.classNames[normal]) vs \(FashionMNIST.classNames[anomaly])",
                                  modelName: model, evaluation: evaluation, batches: sizes, test: split.test,
                                  notes: ["Time per image = embedding (all test images at that batch size) + k-NN against that many anchors, on \(engine.threads) thread(s)."])
                try reportOutput.write(Data(page.html().utf8))
                print("wrote \(report)")
            }
        } catch let e as ExitCode { throw e } catch let e as Baselines.Failure {
            throw fail(DataError(file: "", "\(e); --no-baselines leaves them out"))
        } catch { throw fail(error) }
    }
}

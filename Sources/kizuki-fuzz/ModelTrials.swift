import Engine
import Foundation
import OnnxIO

/// Models for the model trials: seeds, how trial n mutates one, and how it is run
/// (load → Session → plan → run with random inputs of the declared shapes).
struct ModelTrials {
    struct Seed {
        let name: String
        let bytes: Data
        let model: Model?
        /// Inputs recorded with the seed (ONNX backend test data), by graph input name.
        let samples: [String: Tensor]
    }

    let seeds: [Seed]
    let externalDataSeed: Int?
    let corpus: URL
    let mutator = ModelMutator()
    /// The engine's memory budget for each trial (below the supervisor's resident-memory cap, so a model
    /// asking for too much meets the engine's own refusal, which is what the fuzzer tests).
    var memoryBudget = SessionOptions().memoryBudget

    /// Seeds: the models of every allow-listed conformance case (they run, so mutants get deep),
    /// the shipped model, and the one-node models of the corpus (shape inputs as initializers).
    init(corpus: URL, conformance: URL?, allowList: URL?, shippedModel: URL?) throws {
        self.corpus = corpus
        var seeds: [Seed] = []
        func add(_ name: String, _ url: URL, samplesFrom folder: URL?) {
            guard let bytes = try? Data(contentsOf: url) else { return }
            var samples: [String: Tensor] = [:]
            let model = try? Model(serialized: bytes, file: name, baseDirectory: url.deletingLastPathComponent())
            if let folder, let model {
                for (i, input) in model.graph.inputs.enumerated() {
                    let pb = folder.appendingPathComponent("input_\(i).pb")
                    if let t = try? Tensor(protobufFile: pb) { samples[input.name] = t }
                }
            }
            seeds.append(Seed(name: name, bytes: bytes, model: model, samples: samples))
        }
        let built = corpus.appendingPathComponent("models")
        for file in (try? FileManager.default.contentsOfDirectory(atPath: built.path))?.sorted() ?? [] where file.hasSuffix(".onnx") {
            add("corpus/" + file, built.appendingPathComponent(file), samplesFrom: nil)
        }
        externalDataSeed = seeds.count
        add("corpus/external/model.onnx", corpus.appendingPathComponent("external/model.onnx"), samplesFrom: nil)
        if let shippedModel { add(shippedModel.lastPathComponent, shippedModel, samplesFrom: nil) }
        if let conformance, let allowList, let text = try? String(contentsOf: allowList, encoding: .utf8) {
            let cases = Set(text.split(separator: "\n").compactMap { line -> String? in
                let name = line.split(separator: " ").first.map(String.init) ?? ""
                return name.hasPrefix("test_") ? name : nil
            })
            for group in ["node", "pytorch-converted", "pytorch-operator", "simple", "light"] {
                let folder = conformance.appendingPathComponent(group)
                for name in (try? FileManager.default.contentsOfDirectory(atPath: folder.path))?.sorted() ?? [] where cases.contains(name) {
                    let caseFolder = folder.appendingPathComponent(name)
                    add(group + "/" + name, caseFolder.appendingPathComponent("model.onnx"),
                        samplesFrom: caseFolder.appendingPathComponent("test_data_set_0"))
                }
            }
        }
        guard !seeds.isEmpty else { throw FuzzError("no seed models found in \(corpus.path)") }
        self.seeds = seeds
    }

    /// Trial n's model bytes: structure-aware mutation of a decoded seed (55%), byte mutation of its
    /// file (30%), or both (15%); rarely a deeply nested graph or an external-data location swapped for a
    /// FIFO, a symlink out of the folder, or an absolute path.
    func input(trial: Int, _ rng: inout TrialRandom) -> (bytes: Data, seed: Seed) {
        let seed = seeds[rng.below(seeds.count)]
        // Per mille: the nested graphs and external-data swaps find one cause each and cost a driver
        // restart or a timeout every time, so they are rare.
        let roll = rng.below(1000)
        if roll < 3 {
            let depth = rng.pick([10, 1_000, 20_000, 100_000])
            return (NestedGraphs.model(depth: depth), Seed(name: "nested-graphs-\(depth)", bytes: Data(), model: nil, samples: [:]))
        }
        if roll < 13, let e = externalDataSeed, e < seeds.count {
            let external = seeds[e]
            let location = rng.pick(["fifo.pipe.x", "escape.link", "/etc/passwd", "folder.dirx", "weights.bin"])
            return (replace(Data("weights.bin".utf8), with: Data(location.utf8), in: external.bytes), external)
        }
        var bytes = seed.bytes
        if roll < 700, let model = seed.model, let data = try? mutator.mutate(model, &rng).serialized() { bytes = data }
        if roll >= 550 { bytes = ByteMutator.mutate(bytes, donor: seeds[rng.below(seeds.count)].bytes, &rng) }
        return (bytes, seed)
    }

    /// Loads, builds a session, and runs it on random inputs of the declared shapes.
    func run(_ bytes: Data, seed: Seed, _ rng: inout TrialRandom) throws -> Outcome {
        let model = try Model(serialized: bytes, file: "trial.onnx", baseDirectory: corpus.appendingPathComponent("external"))
        var options = SessionOptions()
        options.threads = rng.int(in: 1...2)
        options.checkFinite = rng.chance(0.2)
        options.memoryBudget = memoryBudget
        let session = try Session(model: model, options: options)
        var feeds: [String: HostTensor] = [:]
        for info in session.inputs {
            guard let t = feed(info, sample: seed.samples[info.name], &rng) else { return .notRun }
            feeds[info.name] = t
        }
        _ = try session.run(feeds)
        if rng.chance(0.1) { _ = try session.run(feeds) }  // the cached plan
        return .success
    }

    /// Largest input the harness makes itself; larger declared inputs are not run (the harness's limit, not the engine's).
    static let maxFeedElements = 1 << 22

    func feed(_ info: ValueInfo, sample: Tensor?, _ rng: inout TrialRandom) -> HostTensor? {
        let dtype = info.type?.elementType ?? .float
        if let sample, sample.dataType == dtype, rng.chance(0.7), sample.elementCount <= Self.maxFeedElements,
           let t = try? HostTensor(sample) {
            return t
        }
        guard dtype.isEngineType else { return nil }
        let shape = info.type?.shape.map { dims in dims.map { $0.fixedSize ?? rng.int(in: 1...4) } }
            ?? (0..<rng.int(in: 0...4)).map { _ in rng.int(in: 1...3) }
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p <= Self.maxFeedElements else { return nil }
            count = p
        }
        guard let t = try? HostTensor(dtype: dtype, shape: shape) else { return nil }
        let raw = t.storage.pointer
        for i in 0..<count {
            switch dtype {
            case .float: raw.storeBytes(of: rng.float(in: -2...2), toByteOffset: 4 * i, as: Float.self)
            case .double: raw.storeBytes(of: Double(rng.float(in: -2...2)), toByteOffset: 8 * i, as: Double.self)
            case .int64: raw.storeBytes(of: Int64(rng.int(in: 0...3)), toByteOffset: 8 * i, as: Int64.self)
            case .int32: raw.storeBytes(of: Int32(rng.int(in: 0...3)), toByteOffset: 4 * i, as: Int32.self)
            case .bool: raw.storeBytes(of: UInt8(rng.below(2)), toByteOffset: i, as: UInt8.self)
            default:
                for b in 0..<dtype.elementSize { raw.storeBytes(of: UInt8(truncatingIfNeeded: rng.next()), toByteOffset: i * dtype.elementSize + b, as: UInt8.self) }
            }
        }
        if count > 0, rng.chance(0.2) {  // one interesting value: indices out of range, shapes gone astronomical
            let i = rng.below(count)
            switch dtype {
            case .float: raw.storeBytes(of: rng.interestingFloat(), toByteOffset: 4 * i, as: Float.self)
            case .int64: raw.storeBytes(of: rng.interestingInt(), toByteOffset: 8 * i, as: Int64.self)
            case .int32: raw.storeBytes(of: Int32(truncatingIfNeeded: rng.interestingInt()), toByteOffset: 4 * i, as: Int32.self)
            default: break
            }
        }
        return t
    }

    func replace(_ target: Data, with replacement: Data, in data: Data) -> Data {
        guard let range = data.range(of: target) else { return data }
        var out = data
        out.replaceSubrange(range, with: replacement)
        return out
    }
}

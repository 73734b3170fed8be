import Foundation

/// One run of the `kizuki` binary on a mutated data file: the file, and the command that reads it.
struct CLITrial {
    /// The mutated file or folder (saved with a finding).
    let input: URL
    let arguments: [String]
}

/// How trial n of each data kind is made: which corpus file is mutated and which command reads it
/// (`run --input`, `embed --images`, `score --index/--images`, `calibrate --index`), sometimes with
/// hostile option values as well.
struct CLITrials {
    let corpus: Corpus
    /// Added to every command (e.g. `--memory-limit 1G` once the CLI has it).
    let extraArguments: [String]

    func make(_ kind: TrialKind, trial: Int, in work: URL, _ rng: inout TrialRandom) throws -> CLITrial {
        let fm = FileManager.default
        try? fm.removeItem(at: work)
        try fm.createDirectory(at: work, withIntermediateDirectories: true)
        let embedder = corpus.embedder.path
        let embed = { (images: String) in ["embed", embedder, "--images", images, "--out", work.appendingPathComponent("embeddings.npy").path] }
        let score = { (index: String, images: String) in ["score", embedder, "--index", index, "--images", images] }
        let trial: CLITrial
        switch kind {
        case .npy:
            let seed = rng.chance(0.5) ? corpus.imagesNpy : corpus.inputNpy
            let file = work.appendingPathComponent("input.npy")
            try FileMutators.mutate(.npy, try Data(contentsOf: seed), &rng).write(to: file)
            let run = ["run", embedder, "--input", "images=\(file.path)", "--output-dir", work.appendingPathComponent("out").path]
            trial = CLITrial(input: file, arguments: rng.chance(0.5) ? run : embed(file.path))
        case .kzi:
            let file = work.appendingPathComponent("anchors.kzi")
            try FileMutators.mutate(.kzi, try Data(contentsOf: corpus.index), &rng).write(to: file)
            trial = CLITrial(input: file, arguments: rng.chance(0.7) ? score(file.path, corpus.idx.path) : ["calibrate", embedder, "--index", file.path])
        case .idx, .idxGzip:
            let file = work.appendingPathComponent(kind == .idx ? "images-idx3-ubyte" : "images-idx3-ubyte.gz")
            if kind == .idxGzip && rng.chance(0.05) {
                try fm.copyItem(at: corpus.idxGzipBomb, to: file)
            } else if kind == .idxGzip && rng.chance(0.5) {  // a mutated IDX, compressed: gets past zlib to the IDX parser
                try Corpus.gzip(FileMutators.mutate(.idx, try Data(contentsOf: corpus.idx), &rng), to: file)
            } else {
                try FileMutators.mutate(kind, try Data(contentsOf: kind == .idx ? corpus.idx : corpus.idxGzip), &rng).write(to: file)
            }
            trial = CLITrial(input: file, arguments: rng.chance(0.6) ? embed(file.path) : score(corpus.index.path, file.path))
        case .png:
            let folder = work.appendingPathComponent("png")
            try fm.copyItem(at: corpus.pngFolder, to: folder)
            if rng.chance(0.05) {  // only large images (a small one first would stop the load early): decoded in full before any size check?
                try fm.removeItem(at: folder)
                try fm.createDirectory(at: folder, withIntermediateDirectories: true)
                for i in 0..<rng.int(in: 1...12) { try fm.copyItem(at: corpus.pngBomb, to: folder.appendingPathComponent("large\(i).png")) }
            } else {
                let files = try fm.contentsOfDirectory(atPath: folder.path).sorted()
                let target = rng.pick(files)
                for f in files where f == target || rng.chance(0.2) {
                    let url = folder.appendingPathComponent(f)
                    try FileMutators.mutate(.png, try Data(contentsOf: url), &rng).write(to: url)
                }
            }
            var arguments = embed(folder.path)
            if rng.chance(0.5) { arguments += ["--resize", rng.pick(["nearest", "bilinear"])] }
            trial = CLITrial(input: folder, arguments: arguments)
        case .model:
            throw FuzzError("model trials run in the driver, not through the CLI")
        }
        var arguments = trial.arguments
        if arguments.first != "run" { arguments.append("--quiet") }  // image commands only: no progress bar
        if rng.chance(0.15) { arguments = hostileOptions(arguments, &rng) }
        return CLITrial(input: trial.input, arguments: arguments + extraArguments)
    }

    /// Option values at the edges: k near Int.max, thresholds that are not numbers, huge batches,
    /// `run --input` specs without a name or file.
    func hostileOptions(_ arguments: [String], _ rng: inout TrialRandom) -> [String] {
        var a = arguments
        switch a.first {
        case "run":
            if let i = a.firstIndex(of: "--input") {
                let file = String(a[i + 1].drop { $0 != "=" }.dropFirst())
                a[i + 1] = rng.pick(["=\(file)", "images=", "other=\(file)", "images=\(file)=x", "images=/dev/null"])
            }
        case "score":
            a += rng.chance(0.5) ? ["--k", String(rng.pick([2, 9, 10, 11, Int.max, Int.max - 1, 1 << 40]))]
                                 : ["--threshold", rng.pick(["nan", "inf", "-inf", "-1", "1e308"])]
        case "calibrate": a += ["--k", String(rng.pick([2, 9, 10, Int.max])), "--fpr", rng.pick(["0", "0.5", "1e-300"])]
        default: break
        }
        if rng.chance(0.5) { a += ["--batch", String(rng.pick([1, 3, 1 << 20, Int.max]))] }
        if rng.chance(0.3) { a += ["--threads", String(rng.pick([1, 2, 64]))] }
        return a
    }
}

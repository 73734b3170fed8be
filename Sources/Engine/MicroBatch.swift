import Foundation
import OnnxIO

// Large batches in cache-sized chunks. A convolutional network run layer by layer over a batch of 128 writes each
// layer's activations to memory and reads them back (the reference embedder's 42x42x96 maps are 86 MB at batch 128);
// run as chunks of 8 images, each layer's activations stay in L2/L3. Exact: it applies only to graphs whose
// every op computes each image from that image alone, and each chunk runs the same kernels.

extension Session {
    /// Ops that compute image i of their outputs from image i of their inputs, whatever their attributes;
    /// the ones whose attributes or constant inputs could reach across images are checked in `isBatchSeparable`.
    static let perImageOps: Set<String> = [
        "NhwcConv", "NhwcGlobalAveragePool", "Conv", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Tanh",
        "Identity", "GlobalAveragePool", "GlobalMaxPool", "MaxPool", "AveragePool", "BatchNormalization", "NhwcMaxPool",
    ]

    /// Whether the images of a batch are independent through the whole graph: an image network (it convolves), whose
    /// inputs do not fix axis 0, and every node is per-image, or reshapes, transposes, flattens, resizes, squeezes or
    /// multiplies in ways that keep axis 0 the batch.
    static func isBatchSeparable(_ graph: Graph) -> Bool {
        guard graph.nodes.contains(where: { $0.opType == "Conv" || $0.opType == "NhwcConv" }) else { return false }
        let initialized = Set(graph.initializers.map(\.name))
        for input in graph.inputs where !initialized.contains(input.name) {
            guard let shape = input.type?.shape else { continue }
            guard shape.count >= 2, shape[0].fixedSize == nil else { return false }
        }
        let constants = Dictionary(graph.initializers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func ints(_ name: String) -> [Int64]? {
            guard let t = constants[name], t.dataType == .int64, t.data.count == t.dims.reduce(1, *) * 8 else { return nil }
            return t.int64s
        }
        func floats(_ name: String) -> [Float]? {
            guard let t = constants[name], t.dataType == .float, t.data.count == t.dims.reduce(1, *) * 4 else { return nil }
            return t.floats
        }
        func attributeInts(_ n: Node, _ name: String) -> [Int64]? { if case .ints(let v)? = n.attribute(name) { return v }; return nil }
        func attributeInt(_ n: Node, _ name: String) -> Int64? { if case .int(let v)? = n.attribute(name) { return v }; return nil }
        /// A constant operand that broadcasts over the batch (no batch axis of its own).
        func batchFree(_ name: String) -> Bool { constants[name].map { $0.dims.count <= 1 || $0.dims[0] == 1 } ?? true }
        for n in graph.nodes {
            guard n.domain.isEmpty || n.domain == "ai.onnx" || n.domain == OpRegistry.internalDomain else { return false }
            if perImageOps.contains(n.opType) { continue }
            switch n.opType {
            case "Add", "Mul", "Sub", "Div":
                guard n.inputs.allSatisfy(batchFree) else { return false }
            case "Transpose":
                guard attributeInts(n, "perm")?.first == 0 else { return false }
            case "Reshape":
                // The new shape must leave axis 0 to the batch: -1 (inferred) or 0 (copied) first.
                guard n.inputs.count == 2, let shape = ints(n.inputs[1]), let first = shape.first, first == -1 || first == 0,
                      first == -1 || attributeInt(n, "allowzero") ?? 0 == 0 else { return false }
            case "Flatten":
                guard attributeInt(n, "axis") ?? 1 >= 1 else { return false }
            case "Pad":
                // Constant pads that leave axis 0 alone (begins then ends: index 0 and rank), no axes input.
                guard n.inputs.count >= 2, n.inputs.count < 4 || n.inputs[3].isEmpty, let pads = ints(n.inputs[1]),
                      pads.count >= 2, pads.count % 2 == 0, pads[0] == 0, pads[pads.count / 2] == 0 else { return false }
            case "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum":
                // Reduced axes named (attribute, or input from opset 18), none of them the batch (negative ones are refused:
                // the rank is not known here).
                let axes = n.inputs.count > 1 && !n.inputs[1].isEmpty ? ints(n.inputs[1]) : attributeInts(n, "axes")
                guard let axes, !axes.isEmpty, axes.allSatisfy({ $0 > 0 }) else { return false }
            case "Squeeze", "Unsqueeze":
                let axes = n.inputs.count > 1 ? ints(n.inputs[1]) : attributeInts(n, "axes")
                guard let axes, !axes.contains(0) else { return false }
            case "Resize":
                guard n.inputs.count >= 3, let scales = floats(n.inputs[2]), scales.first == 1, n.inputs.count < 4 || n.inputs[3].isEmpty
                else { return false }
            case "MatMul":
                guard n.inputs.count == 2, constants[n.inputs[0]] == nil, let b = constants[n.inputs[1]], b.dims.count == 2 else { return false }
            case "Gemm":
                guard attributeInt(n, "transA") ?? 0 == 0, n.inputs.count >= 2, constants[n.inputs[0]] == nil, constants[n.inputs[1]] != nil,
                      n.inputs.count < 3 || batchFree(n.inputs[2]) else { return false }
            default:
                return false
            }
        }
        return true
    }

    /// The chunk sizes of a run, or nil to run the batch whole: a batch-separable graph, every input with the same
    /// axis 0, and more than 1.5 chunks of it (a batch of 20 runs whole: a chunk of 4 would cost more than cache saves).
    func microBatches(_ feeds: [String: HostTensor]) -> [Int]? {
        guard options.microBatch != nil, batchSeparable, !feeds.isEmpty else { return nil }
        let batches = Set(feeds.values.map { $0.shape.first ?? -1 })
        guard batches.count == 1, let n = batches.first, n > 1, feeds.values.allSatisfy({ $0.shape.count >= 2 }) else { return nil }
        let size = imagesPerChunk(feeds)
        guard n * 2 > size * 3 else { return nil }
        let count = (n + size - 1) / size
        return (0..<count).map { n * ($0 + 1) / count - n * $0 / count }
    }

    /// Images per chunk: as many as keep one chunk's intermediate values (the arena of a one-image plan, times the images)
    /// within `SessionOptions.chunkBytes`, from 1 to `SessionOptions.microBatch`. The reference embedder's arena is
    /// about 0.8 MB per image (8 per chunk); a 224x224 ResNet's is several (1 per chunk).
    func imagesPerChunk(_ feeds: [String: HostTensor]) -> Int {
        let most = max(1, options.microBatch ?? Int.max)
        guard let bytes = perImageArenaBytes(feeds), bytes > 0 else { return most }
        return max(1, min(most, options.chunkBytes / bytes))
    }

    /// The arena of a plan for the first image of `feeds` (kept per input shape); nil if it cannot be planned.
    func perImageArenaBytes(_ feeds: [String: HostTensor]) -> Int? {
        let key = feeds.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value.dtype.rawValue):\($0.value.shape.dropFirst())" }.joined(separator: ";")
        if let known = arenaPerImage[key] { return known }
        guard let one = try? Session.images(0..<1, of: feeds), let plan = try? Plan(session: self, feeds: one) else { return nil }
        arenaPerImage[key] = plan.arena.byteCount
        return plan.arena.byteCount
    }

    /// Runs each chunk of images whole and writes its outputs into the batch's; if an output's axis 0 is not the
    /// chunk's images (a graph that looked per-image but is not), the batch runs whole instead.
    func runInChunks(_ feeds: [String: HostTensor], _ chunks: [Int]) throws -> [String: HostTensor] {
        try checkFeeds(feeds)
        if options.checkFinite { try checkFeedsFinite(feeds) }
        var results: [[String: HostTensor]] = []
        var start = 0
        for count in chunks {
            results.append(try runWhole(Session.images(start..<start + count, of: feeds)))
            start += count
        }
        return try Session.concatenate(results, chunks) ?? runWhole(feeds)
    }

    /// Images `range` (axis 0) of every feed, copied.
    static func images(_ range: Range<Int>, of feeds: [String: HostTensor]) throws -> [String: HostTensor] {
        try feeds.mapValues { t in
            let row = t.byteCount / t.shape[0]
            let slice = try HostTensor(dtype: t.dtype, shape: [range.count] + t.shape.dropFirst())
            slice.storage.pointer.copyMemory(from: t.storage.pointer + range.lowerBound * row, byteCount: range.count * row)
            return slice
        }
    }

    /// The outputs of consecutive chunks of `counts` images joined along axis 0; nil if an output's axis 0 is not
    /// its chunk's images.
    static func concatenate(_ results: [[String: HostTensor]], _ counts: [Int]) throws -> [String: HostTensor]? {
        guard let first = results.first else { return nil }
        let total = counts.reduce(0, +)
        var outputs: [String: HostTensor] = [:]
        for name in first.keys {
            let t = first[name]!
            let whole = try HostTensor(dtype: t.dtype, shape: [total] + t.shape.dropFirst())
            var offset = 0
            for (result, count) in zip(results, counts) {
                guard let part = result[name], part.shape.first == count, part.shape.dropFirst() == t.shape.dropFirst() else { return nil }
                whole.storage.pointer.advanced(by: offset).copyMemory(from: part.storage.pointer, byteCount: part.byteCount)
                offset += part.byteCount
            }
            outputs[name] = whole
        }
        return outputs
    }
}

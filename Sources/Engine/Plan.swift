import Foundation
import OnnxIO

/// A graph planned for one input signature: shapes inferred, constants folded, every
/// intermediate given an offset in one arena (values whose lifetimes do not overlap share memory).
/// Running it allocates nothing but the returned outputs.
final class Plan {
    /// Where a kernel's input comes from at run time.
    enum Source { case arena(Int), constant(HostTensor), feed(String) }

    struct Step {
        let node: Node
        let kernel: Kernel
        let inputs: [(source: Source, spec: ValueSpec)?]
        let outputs: [(offset: Int, spec: ValueSpec)]
        let scratchOffset: Int?
        /// Input refs resolved against the arena; feed-bound ones are patched per run.
        var boundInputs: [TensorRef?] = []
        var boundOutputs: [TensorRef] = []
        var feedInputs: [(index: Int, name: String)] = []
    }

    let threads: Int
    let checkFinite: Bool
    let profile: Bool
    var steps: [Step] = []
    let arena: TensorStorage
    /// Graph outputs: from the arena, a constant, or straight from a feed.
    var outputs: [(name: String, source: Source, spec: ValueSpec)] = []
    /// Graph inputs whose values the plan depends on (shape inputs), with those values.
    var valueKeys: [String: Data] = [:]

    init(session: Session, feeds: [String: HostTensor]) throws {
        // More threads than the pool has cannot run at once; clamping here also keeps per-thread scratch sizes sane.
        threads = min(max(1, session.options.threads), ThreadPool.shared.workerCount + 1)
        checkFinite = session.options.checkFinite
        profile = session.options.profile

        var budget = MemoryBudget(limit: session.options.memoryBudget)

        // 1. Shape inference and constant folding, node by node.
        var specs: [String: ValueSpec] = [:]
        for (name, t) in session.constants { specs[name] = ValueSpec(t.dtype, t.shape, constant: t) }
        for info in session.inputs { let t = feeds[info.name]!; specs[info.name] = ValueSpec(t.dtype, t.shape) }
        var valueKeys: [String: Data] = [:]

        struct Pending { let node: Node; let kernel: Kernel; let inputs: [String]; let outputs: [ValueSpec] }
        var pending: [Pending] = []
        for (node, kernel) in session.steps {
            let inputSpecs: [ValueSpec?] = try node.inputs.map { name in
                if name.isEmpty { return nil }
                guard let s = specs[name] else { throw EngineError(.invalidModel, "node \(node.label) reads '\(name)', which is never produced") }
                return s
            }
            let planInputs = PlanInputs(specs: inputSpecs, feedValue: { i in
                let name = node.inputs[i]
                guard let t = feeds[name] else { return nil }
                valueKeys[name] = Data(bytes: t.storage.pointer, count: t.byteCount)
                return t
            }, budget: budget, threads: threads)
            var outSpecs: [ValueSpec]
            do { outSpecs = try kernel.infer(planInputs) } catch {
                throw Plan.nodeError(node, inputSpecs, error)
            }
            // Every named output needs a value from the kernel: check positions, not just the count.
            if let missing = node.outputs.indices.first(where: { $0 >= outSpecs.count && !node.outputs[$0].isEmpty }) {
                throw EngineError(.invalidModel, "node \(node.label) declares output \(missing) ('\(node.outputs[missing])'); "
                    + "the kernel makes \(outSpecs.count) output(s)")
            }
            // Before anything is allocated or folded: every output fits in 64-bit sizes and in the budget.
            for (i, spec) in outSpecs.enumerated() {
                do { _ = try budget.check(spec.shape, spec.dtype) } catch let e as KernelError {
                    let name = i < node.outputs.count && !node.outputs[i].isEmpty ? "'\(node.outputs[i])'" : "\(i)"
                    throw EngineError(e.isTooLarge ? .tooLarge : .invalidModel, "node \(node.label) output \(name): \(e.message)")
                }
            }
            let foldable = inputSpecs.allSatisfy { $0 == nil || $0!.constant != nil }
            if foldable && outSpecs.contains(where: { $0.constant == nil }) {
                // All inputs known: run the node now and keep its outputs as constants.
                let hostOutputs = try outSpecs.map { try HostTensor(dtype: $0.dtype, shape: $0.shape) }
                for t in hostOutputs { try budget.reserve(t.byteCount, for: "node \(node.label), folded into a constant,") }
                let scratchBytes = try Plan.scratchBytes(node, kernel, inputSpecs, outSpecs, budget)
                let scratch = scratchBytes > 0 ? try TensorStorage(byteCount: scratchBytes) : nil
                do {
                    try kernel.run(inputs: inputSpecs.map { $0?.constant!.ref }, outputs: hostOutputs.map(\.ref),
                                   context: RunContext(threads: 1, scratch: scratch?.pointer))
                } catch { throw Plan.nodeError(node, inputSpecs, error) }
                for i in outSpecs.indices { outSpecs[i].constant = hostOutputs[i] }
            }
            for (name, spec) in zip(node.outputs, outSpecs) where !name.isEmpty { specs[name] = spec }
            if outSpecs.contains(where: { $0.constant == nil }) {
                pending.append(Pending(node: node, kernel: kernel, inputs: node.inputs, outputs: outSpecs))
            }
        }
        self.valueKeys = valueKeys

        // 2. Lifetimes: a value lives from the step that makes it to the last step that reads it.
        let graphOutputs = Set(session.outputs.map(\.name))
        var lastUse: [String: Int] = [:]
        for (i, p) in pending.enumerated() { for name in p.inputs where !name.isEmpty { lastUse[name] = i } }
        for name in graphOutputs { lastUse[name] = pending.count }

        var blocks: [(size: Int, first: Int, last: Int, key: String)] = []
        for (i, p) in pending.enumerated() {
            for (name, spec) in zip(p.node.outputs, p.outputs) where !name.isEmpty && spec.constant == nil {
                blocks.append((spec.count * spec.dtype.elementSize, i, lastUse[name] ?? i, name))
            }
            let inputSpecs = p.inputs.map { $0.isEmpty ? nil : specs[$0] }
            let scratch = try Plan.scratchBytes(p.node, p.kernel, inputSpecs, p.outputs, budget)
            if scratch > 0 { blocks.append((scratch, i, i, "#scratch\(i)")) }
        }
        let (offsets, total) = try Plan.assignOffsets(blocks)
        try budget.reserve(total, for: "the arena of intermediate values")
        arena = try TensorStorage(byteCount: total)

        // 3. Bind every step's inputs and outputs to memory.
        func source(_ name: String) -> Source {
            if let o = offsets[name] { return .arena(o) }
            if let c = specs[name]?.constant { return .constant(c) }
            return .feed(name)
        }
        for (i, p) in pending.enumerated() {
            var step = Step(
                node: p.node, kernel: p.kernel,
                inputs: p.inputs.map { $0.isEmpty ? nil : (source($0), specs[$0]!) },
                // Every output the kernel makes is bound, also those the node leaves unnamed.
                outputs: p.outputs.enumerated().map { k, spec in
                    let name = k < p.node.outputs.count ? p.node.outputs[k] : ""
                    return (name.isEmpty ? -1 : offsets[name] ?? -1, spec)
                },
                scratchOffset: offsets["#scratch\(i)"])
            // Outputs nobody reads ("" or unused) still need memory: give them a private buffer.
            var bound: [TensorRef] = []
            for o in step.outputs {
                if o.offset >= 0 {
                    bound.append(TensorRef(dtype: o.spec.dtype, shape: o.spec.shape, data: arena.pointer + o.offset))
                    continue
                }
                let bytes = o.spec.count * o.spec.dtype.elementSize
                try budget.reserve(bytes, for: "an unread output of node \(p.node.label)")
                let s = try TensorStorage(byteCount: bytes)
                privateBuffers.append(s)
                bound.append(TensorRef(dtype: o.spec.dtype, shape: o.spec.shape, data: s.pointer))
            }
            step.boundOutputs = bound
            step.boundInputs = step.inputs.enumerated().map { j, input in
                guard let input else { return nil }
                switch input.source {
                case .arena(let o): return TensorRef(dtype: input.spec.dtype, shape: input.spec.shape, data: arena.pointer + o)
                case .constant(let c): return c.ref
                case .feed(let name):
                    step.feedInputs.append((j, name))
                    return nil
                }
            }
            steps.append(step)
        }
        for info in session.outputs {
            guard let spec = specs[info.name] else {
                throw EngineError(.invalidModel, "graph output '\(info.name)' is never produced")
            }
            outputs.append((info.name, source(info.name), spec))
            // Each run returns a fresh copy of every output.
            try budget.reserve(spec.count * spec.dtype.elementSize, for: "graph output '\(info.name)'")
        }
    }

    /// A kernel's scratch for these shapes, checked like any tensor the plan allocates.
    static func scratchBytes(_ node: Node, _ kernel: Kernel, _ inputs: [ValueSpec?], _ outputs: [ValueSpec],
                             _ budget: MemoryBudget) throws -> Int {
        do {
            let bytes = try kernel.scratchBytes(inputs: inputs, outputs: outputs)
            _ = try budget.check([bytes], .uint8)
            return bytes
        } catch let e as KernelError {
            throw EngineError(e.isTooLarge ? .tooLarge : .invalidModel, "node \(node.label) scratch memory: \(e.message)")
        }
    }

    private var privateBuffers: [TensorStorage] = []

    func matchesValues(_ feeds: [String: HostTensor]) -> Bool {
        valueKeys.allSatisfy { name, bytes in
            guard let t = feeds[name] else { return false }
            return bytes == Data(bytes: t.storage.pointer, count: t.byteCount)
        }
    }

    /// Best fit by decreasing size: each block takes the lowest offset that no block with an
    /// overlapping lifetime occupies. Offsets are 64-byte aligned.
    /// Sizes are checked: blocks that each fit can still add up past `Int`.
    static func assignOffsets(_ blocks: [(size: Int, first: Int, last: Int, key: String)]) throws -> ([String: Int], Int) {
        var placed: [(offset: Int, end: Int, first: Int, last: Int)] = []
        var offsets: [String: Int] = [:]
        var total = 0
        for b in blocks.sorted(by: { $0.size > $1.size }) {
            let size = try checkedAdd(b.size, 63, "arena block '\(b.key)'") & ~63
            let clashes = placed.filter { $0.first <= b.last && b.first <= $0.last }.sorted { $0.offset < $1.offset }
            var offset = 0
            for c in clashes {
                if offset + size <= c.offset { break }
                offset = max(offset, c.end)
            }
            let end: Int
            do { end = try checkedAdd(offset, size, "arena block '\(b.key)'") } catch let e as KernelError {
                throw EngineError(.tooLarge, "the arena of intermediate values: \(e.message)")
            }
            placed.append((offset, end, b.first, b.last))
            offsets[b.key] = offset
            total = max(total, end)
        }
        return (offsets, total)
    }

    static func nodeError(_ node: Node, _ inputs: [ValueSpec?], _ error: Error) -> EngineError {
        if let e = error as? EngineError { return e }
        let shapes = inputs.map { $0.map { "\($0.dtype)\($0.shape)" } ?? "-" }.joined(separator: ", ")
        let kernelError = error as? KernelError
        let kind: EngineError.Kind = kernelError?.isUnsupported == true ? .unsupported : kernelError?.isTooLarge == true ? .tooLarge : .nodeFailed
        return EngineError(kind,
                           "node \(node.label) failed with inputs (\(shapes)): \(error)")
    }

    /// Runs every step; with profiling on, `timed(opType, seconds)` after each.
    func run(feeds: [String: HostTensor], timed: (String, Double) -> Void) throws -> [String: HostTensor] {
        for i in steps.indices {
            var inputs = steps[i].boundInputs
            for (j, name) in steps[i].feedInputs { inputs[j] = feeds[name]!.ref }
            let step = steps[i]
            let context = RunContext(threads: threads, scratch: step.scratchOffset.map { arena.pointer + $0 })
            let start = profile ? DispatchTime.now().uptimeNanoseconds : 0
            do { try step.kernel.run(inputs: inputs, outputs: step.boundOutputs, context: context) } catch {
                throw Plan.nodeError(step.node, step.inputs.map { $0?.spec }, error)
            }
            if profile { timed(Plan.profileLabel(step), Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
            if checkFinite { try Plan.checkFinite(step) }
        }
        var result: [String: HostTensor] = [:]
        for (name, source, spec) in outputs {
            let out = try HostTensor(dtype: spec.dtype, shape: spec.shape)
            let from: UnsafeRawPointer
            switch source {
            case .arena(let o): from = UnsafeRawPointer(arena.pointer + o)
            case .constant(let c): from = UnsafeRawPointer(c.storage.pointer)
            case .feed(let n): from = UnsafeRawPointer(feeds[n]!.storage.pointer)
            }
            out.storage.pointer.copyMemory(from: from, byteCount: out.byteCount)
            result[name] = out
        }
        return result
    }

    /// Op type, with the kind of convolution (depthwise, 1x1, k x k) and any fused activation.
    static func profileLabel(_ step: Step) -> String {
        var label = step.node.opType
        if label == "Conv" || label == "NhwcConv", step.inputs.count > 1, let w = step.inputs[1]?.spec.shape, w.count == 4 {
            if case .int(let g)? = step.node.attribute("group"), g > 1, Int(g) == w[0] { label += " depthwise \(w[2])x\(w[3])" }
            else { label += " \(w[2])x\(w[3])" }
        }
        if label == "NhwcConv", step.inputs.count > 3, step.inputs[3] != nil { label += " +Add" }
        if step.node.attribute(FusedAttributes.clipMin) != nil { label += " +Clip" }
        if case .string(let post)? = step.node.attribute(FusedAttributes.activation) { label += " +" + String(decoding: post, as: UTF8.self) }
        return label
    }

    static func checkFinite(_ step: Step) throws {
        for (k, out) in step.boundOutputs.enumerated() {
            guard let (i, value) = firstNonFinite(out) else { continue }
            let name = k < step.node.outputs.count ? step.node.outputs[k] : "#\(k)"
            throw EngineError(.nonFinite, "node \(step.node.label) produced \(value) in output '\(name)' at flat index \(i) (shape \(out.shape))")
        }
    }
}

/// The first NaN or Inf of a float tensor (other types have none), with its flat index.
func firstNonFinite(_ t: TensorRef) -> (index: Int, value: Float)? {
    guard t.dtype == .float else { return nil }
    let p = t.floats
    for i in 0..<t.count where !p[i].isFinite { return (i, p[i]) }
    return nil
}

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
        threads = max(1, session.options.threads)
        checkFinite = session.options.checkFinite
        profile = session.options.profile

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
            })
            var outSpecs: [ValueSpec]
            do { outSpecs = try kernel.infer(planInputs) } catch {
                throw Plan.nodeError(node, inputSpecs, error)
            }
            guard outSpecs.count >= node.outputs.filter({ !$0.isEmpty }).count || outSpecs.count == node.outputs.count else {
                throw EngineError(.invalidModel, "node \(node.label) declares \(node.outputs.count) outputs; the kernel makes \(outSpecs.count)")
            }
            let foldable = inputSpecs.allSatisfy { $0 == nil || $0!.constant != nil }
            if foldable && outSpecs.contains(where: { $0.constant == nil }) {
                // All inputs known: run the node now and keep its outputs as constants.
                let hostOutputs = outSpecs.map { HostTensor(dtype: $0.dtype, shape: $0.shape) }
                let scratchBytes = kernel.scratchBytes(inputs: inputSpecs, outputs: outSpecs)
                let scratch = scratchBytes > 0 ? TensorStorage(byteCount: scratchBytes) : nil
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
            let scratch = p.kernel.scratchBytes(inputs: inputSpecs, outputs: p.outputs)
            if scratch > 0 { blocks.append((scratch, i, i, "#scratch\(i)")) }
        }
        let (offsets, total) = Plan.assignOffsets(blocks)
        arena = TensorStorage(byteCount: total)

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
                outputs: zip(p.node.outputs, p.outputs).map { name, spec in
                    (name.isEmpty ? -1 : offsets[name] ?? -1, spec)
                },
                scratchOffset: offsets["#scratch\(i)"])
            // Outputs nobody reads ("" or unused) still need memory: give them a private buffer.
            var extra: [TensorStorage] = []
            step.boundOutputs = step.outputs.map { o in
                if o.offset >= 0 { return TensorRef(dtype: o.spec.dtype, shape: o.spec.shape, data: arena.pointer + o.offset) }
                let s = TensorStorage(byteCount: o.spec.count * o.spec.dtype.elementSize)
                extra.append(s)
                return TensorRef(dtype: o.spec.dtype, shape: o.spec.shape, data: s.pointer)
            }
            privateBuffers.append(contentsOf: extra)
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
    static func assignOffsets(_ blocks: [(size: Int, first: Int, last: Int, key: String)]) -> ([String: Int], Int) {
        var placed: [(offset: Int, end: Int, first: Int, last: Int)] = []
        var offsets: [String: Int] = [:]
        var total = 0
        for b in blocks.sorted(by: { $0.size > $1.size }) {
            let size = (b.size + 63) & ~63
            let clashes = placed.filter { $0.first <= b.last && b.first <= $0.last }.sorted { $0.offset < $1.offset }
            var offset = 0
            for c in clashes {
                if offset + size <= c.offset { break }
                offset = max(offset, c.end)
            }
            placed.append((offset, offset + size, b.first, b.last))
            offsets[b.key] = offset
            total = max(total, offset + size)
        }
        return (offsets, total)
    }

    static func nodeError(_ node: Node, _ inputs: [ValueSpec?], _ error: Error) -> EngineError {
        if let e = error as? EngineError { return e }
        let shapes = inputs.map { $0.map { "\($0.dtype)\($0.shape)" } ?? "-" }.joined(separator: ", ")
        let unsupported = (error as? KernelError)?.isUnsupported ?? false
        return EngineError(unsupported ? .unsupported : .nodeFailed,
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
            let out = HostTensor(dtype: spec.dtype, shape: spec.shape)
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
        if label == "Conv", step.inputs.count > 1, let w = step.inputs[1]?.spec.shape, w.count == 4 {
            if case .int(let g)? = step.node.attribute("group"), g > 1, Int(g) == w[0] { label += " depthwise \(w[2])x\(w[3])" }
            else { label += " \(w[2])x\(w[3])" }
        }
        if step.node.attribute(FusedAttributes.clipMin) != nil { label += " +Clip" }
        return label
    }

    static func checkFinite(_ step: Step) throws {
        for (k, out) in step.boundOutputs.enumerated() where out.dtype == .float {
            let p = out.floats
            for i in 0..<out.count where !p[i].isFinite {
                throw EngineError(.nonFinite, "node \(step.node.label) produced \(p[i]) in output '\(step.node.outputs[k])' at flat index \(i) (shape \(out.shape))")
            }
        }
    }
}

import CBLAS
import Foundation
import OnnxIO

public struct SessionOptions: Sendable {
    /// Threads for kernels and OpenBLAS; default all cores.
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    /// After each node, check float outputs for NaN or Inf and fail naming the first node that made one.
    public var checkFinite = false
    /// Apply graph rewrites (fusions) before planning.
    public var optimize = true
    /// With `optimize`: run eligible convolutions in NHWC (LayoutNHWC.swift); false keeps NCHW throughout.
    public var nhwc = true
    /// Large batches of a graph whose images are computed independently run as chunks of about this many images
    /// (MicroBatch.swift), so each layer's activations stay in cache; nil runs every batch whole.
    public var microBatch: Int? = 16
    /// With `microBatch`: chunks hold fewer images when one image's intermediate values are large, so a chunk's
    /// stay within about this many bytes (MicroBatch.swift). 7 MiB (8 images of the reference embedder) measured
    /// best of 0.9, 1.8, 3.5, 5, 7 and 24 MB on a Zen 4 (1 MiB L2 per core): batch 128, one thread, 1.58 -> 1.53 ms
    /// per image, and 1 image is slower (1.95): its layers are too small to keep the GEMM busy.
    public var chunkBytes: Int = 7 << 20
    /// With more than one thread, a batch of a graph whose images are computed independently is shared out in
    /// chunks to per-thread lanes, each running whole network passes on one thread (BatchLanes.swift), instead of
    /// every layer being split across the threads; false always splits layers.
    public var batchLanes = true
    /// Time every node; read the totals with `Session.profile`.
    public var profile = false
    /// Bytes the engine may allocate for one input signature from sizes the model determines: each
    /// tensor alone, and what a plan keeps (arena, folded constants, outputs) together. Beyond it,
    /// planning fails with `EngineError.Kind.tooLarge` naming the node and tensor. Default: half of
    /// physical memory.
    public var memoryBudget: Int = MemoryBudget.defaultLimit
    public init() {}
}

/// A model made ready to run: kernels built once, plans made per input signature and kept.
public final class Session {
    public let model: Model
    public let options: SessionOptions
    let graph: Graph
    /// Nodes in topological order with their kernels.
    let steps: [(node: Node, kernel: Kernel)]
    let constants: [String: HostTensor]
    /// Whether every image of a batch is computed from that image alone (MicroBatch.swift).
    let batchSeparable: Bool
    private var plans: [String: [Plan]] = [:]
    /// One single-threaded session per thread, made at the first run in lanes (BatchLanes.swift).
    var lanes: [Session] = []
    /// Arena bytes of a one-image plan, per input signature without the batch (MicroBatch.swift).
    var arenaPerImage: [String: Int] = [:]
    private let lock = NSLock()

    /// Per op type: total seconds and calls over every run since the session was made or the last
    /// `resetProfile()` (with `options.profile`).
    public internal(set) var profile: [String: (seconds: Double, calls: Int)] = [:]

    public func resetProfile() { lock.lock(); profile = [:]; lock.unlock(); for lane in lanes { lane.resetProfile() } }

    /// Plans made so far (one per input signature).
    public var planCount: Int { lock.lock(); defer { lock.unlock() }; return plans.values.reduce(0) { $0 + $1.count } }

    public var inputs: [ValueInfo] { graph.inputs.filter { constants[$0.name] == nil } }
    public var outputs: [ValueInfo] { graph.outputs }

    public convenience init(contentsOf url: URL, options: SessionOptions = .init()) throws {
        try self.init(model: Model(contentsOf: url), options: options)
    }

    public convenience init(model: Model, options: SessionOptions = .init()) throws {
        var graph = model.graph
        try Session.checkSingleProducers(graph)
        let reserved = graph.nodes.filter { $0.domain == OpRegistry.internalDomain }
        if !reserved.isEmpty {
            throw EngineError(.unsupported, "the model uses the domain '\(OpRegistry.internalDomain)', reserved for Kizuki's own rewrites "
                + "(first: node \(reserved[0].label), \(reserved.count) node(s))")
        }
        if options.optimize { graph = GraphOptimizer.optimize(graph, opset: Int(model.opsetVersion() ?? 1)) }
        if options.optimize && options.nhwc { graph = LayoutNHWC.rewrite(graph) }
        var constants: [String: HostTensor] = [:]
        let budget = MemoryBudget(limit: options.memoryBudget)
        for t in graph.initializers {
            do { _ = try budget.check(t.dims, t.dataType) } catch let e as KernelError {
                throw EngineError(e.isTooLarge ? .tooLarge : .invalidModel, "initializer '\(t.name)': \(e.message)")
            }
            constants[t.name] = try HostTensor(t)
        }
        try self.init(model: model, options: options, graph: graph, constants: constants)
    }

    /// A session on a graph already rewritten and its constants (shared, read-only): `init(model:options:)`, and
    /// the per-thread sessions of batch lanes (BatchLanes.swift), which get kernels of their own.
    init(model: Model, options: SessionOptions, graph: Graph, constants: [String: HostTensor]) throws {
        self.model = model
        self.options = options
        self.graph = graph
        self.constants = constants
        let opset = Int(model.opsetVersion() ?? 1)

        // Build every kernel; collect every unsupported op so the user sees them all at once.
        var built: [(Node, Kernel)] = []
        var unsupported: [String: (count: Int, first: String, why: String)] = [:]
        for node in try Session.topologicalOrder(graph) {
            func refuse(_ why: String) {
                let key = node.domain.isEmpty || node.domain == "ai.onnx" ? node.opType : "\(node.domain).\(node.opType)"
                let seen = unsupported[key]
                unsupported[key] = ((seen?.count ?? 0) + 1, seen?.first ?? node.label, seen?.why ?? why)
            }
            let ours = node.domain == OpRegistry.internalDomain
            guard node.domain.isEmpty || node.domain == "ai.onnx" || ours else { refuse("domain '\(node.domain)'"); continue }
            guard let factory = (ours ? OpRegistry.internalOps : OpRegistry.factories)[node.opType] else { refuse(""); continue }
            do {
                built.append((node, try factory(NodeInfo(node: node, opset: opset))))
            } catch let e as KernelError where e.isUnsupported {
                refuse(e.message)
            } catch let e as KernelError where e.isTooLarge {
                throw EngineError(.tooLarge, "node \(node.label): \(e.message)")
            } catch {
                throw EngineError(.invalidModel, "node \(node.label): \(error)")
            }
        }
        if !unsupported.isEmpty {
            let lines = unsupported.sorted { $0.key < $1.key }.map { op, info in
                "  \(op) x\(info.count) (first: \(info.first))" + (info.why.isEmpty ? "" : ": \(info.why)")
            }
            throw EngineError(.unsupported, "the model uses \(unsupported.count) unsupported operator(s):\n" + lines.joined(separator: "\n"))
        }
        self.steps = built
        batchSeparable = Session.isBatchSeparable(graph)
        // The engine parallelises GEMMs itself on its thread pool; BLAS threads would spin against it.
        try BLAS.loadSingleThreaded()
    }

    /// Each value has one producer: memory is planned per name, so a second writer (or a node writing a graph
    /// input or an initializer) would write into a buffer sized for another value. OnnxIO's validator refuses
    /// these on load; models built in code reach the engine unchecked, so it checks them before any rewrite.
    static func checkSingleProducers(_ graph: Graph) throws {
        let given = Set(graph.inputs.map(\.name) + graph.initializers.map(\.name))
        var produced = Set<String>()
        for n in graph.nodes {
            for o in n.outputs where !o.isEmpty {
                guard !given.contains(o) && produced.insert(o).inserted else {
                    throw EngineError(.invalidModel, "node \(n.label) writes '\(o)', which "
                        + (given.contains(o) ? "is a graph input or initializer" : "another node already produces"))
                }
            }
        }
    }

    /// Nodes sorted so each comes after the producers of its inputs (models need not be sorted).
    static func topologicalOrder(_ graph: Graph) throws -> [Node] {
        var producer: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() { for o in n.outputs where !o.isEmpty { producer[o] = i } }
        var state = [UInt8](repeating: 0, count: graph.nodes.count)  // 0 new, 1 visiting, 2 done
        var order: [Node] = []
        for start in graph.nodes.indices where state[start] == 0 {
            var stack: [(Int, Int)] = [(start, 0)]
            state[start] = 1
            while let (i, next) = stack.last {
                let deps = graph.nodes[i].inputs
                if next < deps.count {
                    stack[stack.count - 1].1 += 1
                    if let p = producer[deps[next]], p != i {
                        if state[p] == 1 { throw EngineError(.invalidModel, "the graph has a cycle through node \(graph.nodes[p].label)") }
                        if state[p] == 0 { state[p] = 1; stack.append((p, 0)) }
                    }
                } else {
                    state[i] = 2
                    order.append(graph.nodes[i])
                    stack.removeLast()
                }
            }
        }
        return order
    }

    /// Runs the model. Feeds are checked against the model's declared inputs.
    public func run(_ feeds: [String: HostTensor]) throws -> [String: HostTensor] {
        lock.lock()
        defer { lock.unlock() }
        try checkFeeds(feeds)  // before chunking: sizing chunks plans one image of these feeds
        if let chunks = laneChunks(feeds) { return try runInLanes(feeds, chunks) }
        if let chunks = microBatches(feeds) { return try runInChunks(feeds, chunks) }
        return try runWhole(feeds)
    }

    /// One run of the whole batch (the caller holds `lock`).
    func runWhole(_ feeds: [String: HostTensor]) throws -> [String: HostTensor] {
        try checkFeeds(feeds)
        if options.checkFinite { try checkFeedsFinite(feeds) }
        let signature = inputs.map { info -> String in
            let t = feeds[info.name]!
            return "\(t.dtype.rawValue):\(t.shape)"
        }.joined(separator: ";")
        let plan: Plan
        if let cached = plans[signature]?.first(where: { $0.matchesValues(feeds) }) {
            plan = cached
        } else {
            plan = try Plan(session: self, feeds: feeds)
            plans[signature, default: []].append(plan)
        }
        return try plan.run(feeds: feeds) { op, seconds in
            let seen = profile[op] ?? (0, 0)
            profile[op] = (seen.seconds + seconds, seen.calls + 1)
        }
    }

    /// Wrong names, ranks, shapes and element types, each explained with the expected shape.
    func checkFeeds(_ feeds: [String: HostTensor]) throws {
        let expected = inputs
        for name in feeds.keys where !expected.contains(where: { $0.name == name }) {
            throw EngineError(.invalidInput, "unknown input '\(name)'; the model's inputs are: "
                + expected.map { "'\($0.name)' \(describe($0.type))" }.joined(separator: ", "))
        }
        var symbols: [String: Int] = [:]
        for info in expected {
            guard let t = feeds[info.name] else {
                throw EngineError(.invalidInput, "missing input '\(info.name)' \(describe(info.type))")
            }
            guard let type = info.type, let elementType = type.elementType else { continue }
            if t.dtype != elementType {
                throw EngineError(.invalidInput, "input '\(info.name)' has element type \(t.dtype), expected \(elementType) \(describe(type))")
            }
            guard let dims = type.shape else { continue }
            guard dims.count == t.shape.count else {
                throw EngineError(.invalidInput, "input '\(info.name)' has rank \(t.shape.count) (shape \(t.shape)), expected \(describe(type))")
            }
            // Free axes (-1, '?', '', no value) take any size, each on its own; only real names tie axes together.
            for (axis, (dim, actual)) in zip(dims, t.shape).enumerated() {
                if let n = dim.fixedSize, n != actual {
                    throw EngineError(.invalidInput, "input '\(info.name)' has shape \(t.shape), expected \(describe(type)) (axis \(axis) must be \(n))")
                }
                if let s = dim.symbolName {
                    if let bound = symbols[s], bound != actual {
                        throw EngineError(.invalidInput, "input '\(info.name)' axis \(axis) is \(actual) but '\(s)' is \(bound) in another input")
                    }
                    symbols[s] = actual
                }
            }
        }
        // A fed tensor exists, but its shape may still carry axes no kernel could make tables for.
        let budget = MemoryBudget(limit: options.memoryBudget)
        for (name, t) in feeds {
            do { _ = try budget.check(t.shape, t.dtype) } catch let e as KernelError {
                throw EngineError(e.isTooLarge ? .tooLarge : .invalidInput, "input '\(name)': \(e.message)")
            }
        }
    }

    /// With `checkFinite`: a NaN or Inf already in an input is named as the input's, not blamed on the first node reading it.
    func checkFeedsFinite(_ feeds: [String: HostTensor]) throws {
        for info in inputs {
            guard let t = feeds[info.name], let (index, value) = firstNonFinite(t.ref) else { continue }
            throw EngineError(.nonFinite, "input '\(info.name)' holds \(value) at flat index \(index) (shape \(t.shape))")
        }
    }
}

func describe(_ type: ValueType?) -> String {
    guard let type, let e = type.elementType else { return "(type not declared)" }
    guard let shape = type.shape else { return "\(e)[?]" }
    return "\(e)[\(shape.map(\.description).joined(separator: ","))]"
}

import Foundation

/// What `kizuki inspect` reports about a model, computed once and printed as text or JSON.
public struct ModelSummary: Codable, Equatable {
    public struct Value: Codable, Equatable {
        public var name: String
        public var elementType: String
        /// Dimensions as text: numbers, symbolic names, or "?"; nil when the rank is unknown.
        public var shape: [String]?
    }
    public struct Opset: Codable, Equatable { public var domain: String; public var version: Int64 }
    public struct OpCount: Codable, Equatable { public var op: String; public var count: Int }

    public var file: String
    public var producer: String
    public var producerVersion: String
    public var irVersion: Int64
    public var opsets: [Opset]
    public var inputs: [Value]
    public var outputs: [Value]
    public var nodeCount: Int
    public var ops: [OpCount]
    public var initializerCount: Int
    public var parameterCount: Int
    public var parameterBytes: Int
    public var externalDataFiles: [String]

    public init(model: Model, file: String) {
        self.file = file
        producer = model.producerName
        producerVersion = model.producerVersion
        irVersion = model.irVersion
        opsets = model.opsetImports.map { Opset(domain: $0.domain.isEmpty ? "ai.onnx" : $0.domain, version: $0.version) }
        let initializerNames = Set(model.graph.initializers.map(\.name))
        func value(_ v: ValueInfo) -> Value {
            Value(name: v.name, elementType: v.type?.elementType?.description ?? "?", shape: v.type?.shape?.map(\.description))
        }
        inputs = model.graph.inputs.filter { !initializerNames.contains($0.name) }.map(value)
        outputs = model.graph.outputs.map(value)
        nodeCount = model.graph.nodes.count
        var histogram: [String: Int] = [:]
        for n in model.graph.nodes { histogram[n.domain.isEmpty ? n.opType : "\(n.domain).\(n.opType)", default: 0] += 1 }
        ops = histogram.map { OpCount(op: $0.key, count: $0.value) }.sorted { ($0.count, $1.op) > ($1.count, $0.op) }
        initializerCount = model.graph.initializers.count
        parameterCount = model.graph.initializers.reduce(0) { $0 + $1.elementCount }
        parameterBytes = model.graph.initializers.reduce(0) { $0 + max($1.data.count, $1.strings.reduce(0) { $0 + $1.count }) }
        externalDataFiles = Array(Set(model.graph.initializers.compactMap { $0.externalLocation?.path })).sorted()
    }

    public var text: String {
        func shape(_ v: Value) -> String { v.shape.map { "[" + $0.joined(separator: ", ") + "]" } ?? "[?]" }
        var lines = [
            "model:        \(file)",
            "producer:     \(producer) \(producerVersion)".trimmingCharacters(in: .whitespaces),
            "ir_version:   \(irVersion)",
            "opsets:       " + opsets.map { "\($0.domain) \($0.version)" }.joined(separator: ", "),
            "inputs:",
        ]
        lines += inputs.map { "  \($0.name): \($0.elementType) \(shape($0))" }
        lines.append("outputs:")
        lines += outputs.map { "  \($0.name): \($0.elementType) \(shape($0))" }
        lines.append("nodes:        \(nodeCount)")
        lines += ops.map { "  \($0.op.padding(toLength: 24, withPad: " ", startingAt: 0)) \($0.count)" }
        lines.append("initializers: \(initializerCount)")
        lines.append("parameters:   \(parameterCount) (\(Self.bytes(parameterBytes)))")
        lines.append("external data: " + (externalDataFiles.isEmpty ? "none" : externalDataFiles.joined(separator: ", ")))
        return lines.joined(separator: "\n")
    }

    static func bytes(_ n: Int) -> String {
        n >= 1 << 20 ? String(format: "%.2f MiB", Double(n) / 1048576) : n >= 1024 ? String(format: "%.1f KiB", Double(n) / 1024) : "\(n) B"
    }
}

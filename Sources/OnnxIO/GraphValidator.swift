import Foundation

/// Structural checks of a graph, before anything runs it: a main graph with outputs, unique graph input,
/// output and initializer names, every node input defined (by a graph input, an initializer, an earlier
/// node or an enclosing graph), no cycles, and subgraphs nested at most `NestingLimit.maxGraphDepth` deep.
/// Nodes need not be listed in topological order; a cycle is reported with a node on it.
/// Nothing here recurses on the graph's nesting: models built in Swift are not bounded by the decoder's check.
struct GraphValidator {
    let file: String

    func check(_ root: Graph) throws {
        try checkNesting(root)
        guard !root.outputs.isEmpty else {
            throw OnnxError(.malformed, file: file, "graph: the main graph has no outputs, so it computes nothing")
        }
        var pending = [(graph: root, outer: Set<String>(), path: "graph")]
        while let (graph, outer, path) = pending.popLast() {
            pending += try checkOne(graph, outer: outer, path: path)
        }
    }

    /// Refuses graphs nested deeper than the limit (walked with an explicit stack), so that
    /// the recursive helpers below (`implicitInputs`) see bounded depth.
    private func checkNesting(_ root: Graph) throws {
        var pending = [(graph: root, depth: 1)]
        while let (graph, depth) = pending.popLast() {
            guard depth <= NestingLimit.maxGraphDepth else {
                throw OnnxError(.tooDeep, file: file, "graph: subgraphs are nested more than \(NestingLimit.maxGraphDepth) levels deep; Kizuki reads at most \(NestingLimit.maxGraphDepth)")
            }
            for node in graph.nodes { for g in node.subgraphs { pending.append((g, depth + 1)) } }
        }
    }

    /// Checks one graph; returns its subgraphs with the names they can see.
    private func checkOne(_ graph: Graph, outer: Set<String>, path: String) throws -> [(graph: Graph, outer: Set<String>, path: String)] {
        try requireUnique(graph.inputs.map(\.name), "graph input", path: path)
        try requireUnique(graph.outputs.map(\.name), "graph output", path: path)
        var defined = outer
        var initializers = Set<String>()
        for t in graph.initializers {
            guard initializers.insert(t.name).inserted else {
                throw OnnxError(.duplicateName, file: file, "\(path): initializer '\(t.name)' is defined twice")
            }
        }
        defined.formUnion(initializers)
        for input in graph.inputs { defined.insert(input.name) }

        let inputNames = Set(graph.inputs.map(\.name))
        var producer: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() {
            for output in node.outputs where !output.isEmpty {
                // A node writing a graph input would write into the caller's tensor (sized for the input's shape).
                if producer[output] != nil || initializers.contains(output) || inputNames.contains(output) {
                    throw OnnxError(.duplicateName, file: file, "\(path): value '\(output)' is produced twice (again by node \(node.label))")
                }
                producer[output] = i
            }
        }
        // Every input must be defined somewhere visible.
        for node in graph.nodes {
            for input in node.inputs where !input.isEmpty && !defined.contains(input) && producer[input] == nil {
                throw OnnxError(.danglingInput, file: file,
                                "\(path): node \(node.label) reads '\(input)', which no graph input, initializer or node produces")
            }
        }
        for output in graph.outputs where !defined.contains(output.name) && producer[output.name] == nil {
            throw OnnxError(.danglingInput, file: file, "\(path): graph output '\(output.name)' is never produced")
        }
        // Kahn's algorithm over node-to-node edges; what remains lies on or behind a cycle.
        var pending = [Int](repeating: 0, count: graph.nodes.count)
        var consumers = [[Int]](repeating: [], count: graph.nodes.count)
        for (i, node) in graph.nodes.enumerated() {
            for input in Set(node.implicitInputs + node.inputs) where !input.isEmpty {
                if let p = producer[input], !defined.contains(input) {
                    pending[i] += 1
                    consumers[p].append(i)
                }
            }
        }
        var ready = (0..<graph.nodes.count).filter { pending[$0] == 0 }
        var done = 0
        while let i = ready.popLast() {
            done += 1
            for c in consumers[i] {
                pending[c] -= 1
                if pending[c] == 0 { ready.append(c) }
            }
        }
        if done < graph.nodes.count, let stuck = pending.indices.first(where: { pending[$0] > 0 }) {
            throw OnnxError(.cycle, file: file, "\(path): the graph has a cycle through node \(graph.nodes[stuck].label)")
        }
        // Subgraphs see everything defined in this graph.
        let visible = defined.union(producer.keys)
        return graph.nodes.flatMap { node in
            node.attributes.flatMap { attribute in
                attribute.subgraphs.map { (graph: $0, outer: visible, path: "\(path) > \(node.label).\(attribute.name)") }
            }
        }
    }

    private func requireUnique(_ names: [String], _ what: String, path: String) throws {
        var seen = Set<String>()
        for name in names where !seen.insert(name).inserted {
            throw OnnxError(.duplicateName, file: file, "\(path): \(what) '\(name)' is declared twice")
        }
    }
}

extension Attribute {
    /// The graphs this attribute holds (a GRAPH or GRAPHS value), else none.
    var subgraphs: [Graph] {
        switch value {
        case .graph(let g): return [g]
        case .graphs(let gs): return gs
        default: return []
        }
    }
}

extension Node {
    var subgraphs: [Graph] { attributes.flatMap(\.subgraphs) }

    /// Names of outer-scope values read by this node's subgraphs (If/Loop/Scan bodies): they order
    /// the node after their producers just like its inputs do.
    var implicitInputs: [String] {
        var names: [String] = []
        func visit(_ g: Graph) {
            var local = Set(g.initializers.map(\.name))
            for i in g.inputs { local.insert(i.name) }
            for n in g.nodes { for o in n.outputs { local.insert(o) } }
            for n in g.nodes {
                for i in n.inputs + n.implicitInputs where !i.isEmpty && !local.contains(i) { names.append(i) }
            }
            for o in g.outputs where !local.contains(o.name) { names.append(o.name) }
        }
        subgraphs.forEach(visit)
        return names
    }
}

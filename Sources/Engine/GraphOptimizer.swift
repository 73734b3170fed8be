import OnnxIO

/// Graph rewrites applied before planning (fusions). Each keeps the graph's meaning exactly.
enum GraphOptimizer {
    static func optimize(_ graph: Graph) -> Graph {
        graph
    }
}

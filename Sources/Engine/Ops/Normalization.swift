import Foundation
import OnnxIO

extension OpRegistry {
    static let normalizationOps: [String: KernelFactory] = [:]
}

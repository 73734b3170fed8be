import Foundation
import OnnxIO

extension OpRegistry {
    static let activationOps: [String: KernelFactory] = [:]
}

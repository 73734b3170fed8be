import Foundation

/// Errors from reading, writing or validating ONNX models and tensor files.
/// Each names the file and the element at fault, so the CLI can print it as is.
public struct OnnxError: Error, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        case io, notFound, isDirectory, empty, malformed, tooLarge, invalidTensor, externalData,
             duplicateName, danglingInput, cycle, unsupported, tooDeep
    }
    public var kind: Kind
    public var file: String
    public var message: String

    public init(_ kind: Kind, file: String, _ message: String) {
        self.kind = kind
        self.file = file
        self.message = message
    }

    public var description: String { file.isEmpty ? message : "\(file): \(message)" }
}

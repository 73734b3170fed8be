/// The newest ONNX versions Kizuki's reader knows: those of ONNX 1.22.0, whose backend test data
/// `make test` loads in full. A newer IR may change what fields mean, a newer default-domain opset
/// may change what operators do: both are refused rather than read as something they are not.
extension Model {
    public static let newestIRVersion: Int64 = 13
    public static let newestDefaultOpset: Int64 = 27

    func checkVersions(file: String) throws {
        if irVersion > Self.newestIRVersion {
            throw OnnxError(.unsupported, file: file,
                            "the model's IR version is \(irVersion); Kizuki reads IR versions up to \(Self.newestIRVersion) (ONNX 1.22)")
        }
        if let opset = opsetVersion(), opset > Self.newestDefaultOpset {
            throw OnnxError(.unsupported, file: file,
                            "the model imports opset \(opset) of the default ONNX domain; Kizuki knows opsets up to \(Self.newestDefaultOpset) (ONNX 1.22)")
        }
    }
}

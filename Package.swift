// swift-tools-version:6.0
// Kizuki: fast image anomaly detection with learned embeddings, on ONNX models.
//
// Module map (the folders tell the architecture):
//   CONNX     protoc-c output for proto/onnx.proto (generated, `make proto`)
//   CBLAS     OpenBLAS loaded at run time with kernels chosen from CPUID (not linked: see its header)
//   CSync     futex event count and spin hint for the engine's thread pool
//   CKernels  NHWC convolution kernels in C (packed GEMM with fused epilogue, depthwise), dispatched on CPU features
//   CZlib, CPNG, CHDF5   system libraries (zlib, libpng, libhdf5)
//   OnnxIO    Model / Graph / Node / Tensor values, ONNX read/write, .npy and .pb tensor files
//   Engine    planning and execution of graphs, one file per op family
//   Anomaly   datasets (IDX, PNG), anchor index, k-NN, ROC/AUC, thresholds, reports
//   Training  the trainer: training graphs in the ONNX IR, gradients, triplet losses, SGD, checkpoints
//   Keras     Keras weight files (HDF5, through libhdf5)
//   kizuki    the command-line tool
// CPU-specific flags (e.g. -target-cpu) are passed by the Makefile, never here.
import PackageDescription

let package = Package(
    name: "Kizuki",
    products: [
        .executable(name: "kizuki", targets: ["kizuki"]),
        .executable(name: "kizuki-fuzz", targets: ["kizuki-fuzz"]),
        .library(name: "OnnxIO", targets: ["OnnxIO"]),
        .library(name: "Engine", targets: ["Engine"]),
        .library(name: "Anomaly", targets: ["Anomaly"]),
        .library(name: "Training", targets: ["Training"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CBLAS", linkerSettings: [.linkedLibrary("dl"), .linkedLibrary("pthread")]),
        .target(name: "CSync"),
        .target(name: "CKernels"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .target(
            name: "CONNX",
            exclude: ["PROTOC_C_VERSION"],
            linkerSettings: [.linkedLibrary("protobuf-c")]
        ),
        .target(name: "OnnxIO", dependencies: ["CONNX"]),
        .target(name: "Engine", dependencies: ["OnnxIO", "CBLAS", "CSync", "CKernels"]),
        .target(name: "Anomaly", dependencies: ["Engine", "OnnxIO", "CZlib", "CPNG"]),
        .target(name: "Training", dependencies: ["Engine", "OnnxIO", "Anomaly"]),
        .target(name: "Keras", dependencies: ["CHDF5", "Training"]),
        // Hostile inputs through the whole pipeline (`make fuzz`, and a fixed budget in `make test`).
        .executableTarget(
            name: "kizuki-fuzz",
            dependencies: ["OnnxIO", "Engine", "Anomaly", "CZlib", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "kizuki",
            dependencies: [
                "OnnxIO", "Engine", "Anomaly", "Training", "Keras",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "OnnxIOTests", dependencies: ["OnnxIO"], exclude: ["Fixtures"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "OnnxIO", "CBLAS", "CKernels"]),
        .testTarget(name: "AnomalyTests", dependencies: ["Anomaly", "Engine", "OnnxIO"]),
        .testTarget(name: "KerasTests", dependencies: ["Keras", "Training", "Engine", "OnnxIO", "Anomaly"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Engine", "OnnxIO", "Anomaly"]),
        .testTarget(name: "ConformanceTests", dependencies: ["Engine", "OnnxIO"]),
        // Runs the built `kizuki` binary; depends on it so `swift build` makes it first (Anomaly: PNG fixtures).
        .testTarget(name: "KizukiCLITests", dependencies: ["kizuki", "Anomaly"]),
    ],
    swiftLanguageModes: [.v5]
)

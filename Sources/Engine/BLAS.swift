import CBLAS

/// OpenBLAS as Kizuki uses it: loaded on first use with kernels chosen for this CPU (module CBLAS),
/// and what it is running, for `kizuki --version`, `kizuki bench` and the tests.
public enum BLAS {
    /// Loads OpenBLAS if needed; throws, saying how to install it, when it cannot be loaded.
    public static func load() throws {
        guard kizuki_blas_load() else { throw EngineError(.unsupported, String(cString: kizuki_blas_error())) }
    }

    /// Loads OpenBLAS and keeps it on one thread: the engine parallelises GEMMs itself on its pool,
    /// and BLAS threads would spin against the pool's.
    public static func loadSingleThreaded() throws {
        try load()
        kizuki_blas_set_threads(1)
    }

    /// The OpenBLAS core whose kernels run, e.g. "Zen", "SkylakeX" ("" when not loaded).
    public static var core: String { String(cString: kizuki_blas_core()) }

    /// OpenBLAS's build description, e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...".
    public static var config: String { String(cString: kizuki_blas_config()) }

    /// The file the library was loaded from.
    public static var path: String { String(cString: kizuki_blas_path()) }

    /// How the core was decided, in words.
    public static var coreSource: String {
        switch kizuki_blas_source() {
        case KIZUKI_BLAS_CORE_CHOSEN: return "chosen by Kizuki from the CPU's features"
        case KIZUKI_BLAS_CORE_FROM_USER: return "OPENBLAS_CORETYPE set by the user"
        case KIZUKI_BLAS_CORE_DETECTED: return "OpenBLAS's own detection"
        case KIZUKI_BLAS_ALREADY_LOADED: return "decided by whoever loaded OpenBLAS first in this process"
        default: return "not loaded"
        }
    }

    /// One line for headers: "OpenBLAS 0.3.21, core Zen (chosen by Kizuki from the CPU's features),
    /// /usr/lib/x86_64-linux-gnu/libopenblas.so.0", or the load error.
    public static var summary: String {
        guard kizuki_blas_load() else { return "OpenBLAS not loaded: " + String(cString: kizuki_blas_error()) }
        let version = config.split(separator: " ").prefix(2).joined(separator: " ")
        return "\(version), core \(core) (\(coreSource)), \(path)"
    }
}

/// The processor as CPUID reports it.
public struct CPUInfo: Sendable {
    public let vendor: String
    /// The processor's name string, e.g. "AMD EPYC 7B13".
    public let name: String
    public let family: Int
    public let model: Int
    /// Vector features present and enabled by the OS, e.g. ["sse3", ..., "avx2"].
    public let features: [String]
    /// The OpenBLAS core whose kernels suit these features, nil when OpenBLAS should decide.
    public let preferredBLASCore: String?
    /// Whether the processor has AVX2 or AVX-512 (so a BLAS core without AVX2 kernels is a fallback).
    public let hasWideVectors: Bool

    public static let current = CPUInfo()

    init() {
        var raw = kizuki_cpu_features()
        kizuki_cpu_detect(&raw)
        vendor = withUnsafeBytes(of: raw.vendor) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        name = withUnsafeBytes(of: raw.brand) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        family = Int(raw.family)
        model = Int(raw.model)
        let needed = kizuki_cpu_feature_list(&raw, nil, 0)
        var buffer = [CChar](repeating: 0, count: needed + 1)
        kizuki_cpu_feature_list(&raw, &buffer, buffer.count)
        features = String(cString: buffer).split(separator: " ").map(String.init)
        preferredBLASCore = kizuki_blas_core_for(&raw).map { String(cString: $0) }
        hasWideVectors = raw.avx2 || raw.avx512f
    }

    /// "AMD EPYC 7B13 (AuthenticAMD family 25 model 1): sse3 ... avx2"
    public var summary: String {
        "\(name.isEmpty ? "unknown CPU" : name) (\(vendor) family \(family) model \(model)): \(features.joined(separator: " "))"
    }
}

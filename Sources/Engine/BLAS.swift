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

/// The LAPACK routines Kizuki uses, from the LAPACK that OpenBLAS bundles (resolved by module CBLAS when
/// OpenBLAS loads; optional there, so an OpenBLAS without LAPACK still runs models and only these throw).
public enum LAPACK {
    /// Loads OpenBLAS if needed; throws, saying what is missing and how to get it, when it has no LAPACK.
    public static func load() throws {
        try BLAS.loadSingleThreaded()
        guard kizuki_lapack_load() else { throw EngineError(.unsupported, String(cString: kizuki_lapack_error())) }
    }

    /// Eigenvalues and orthonormal eigenvectors of the symmetric n x n matrix `matrix` (row-major; only its
    /// lower triangle is read), by LAPACK's divide and conquer (dsyevd). `values` ascend; `vectors` is
    /// row-major n x n with eigenvector i in row i, so that A · vectors[i] = values[i] · vectors[i].
    public static func symmetricEigen(_ matrix: [Double], n: Int) throws -> (values: [Double], vectors: [Double]) {
        guard n >= 0, matrix.count == n * n else {
            throw EngineError(.invalidInput, "symmetricEigen: \(matrix.count) values are not a \(n) x \(n) matrix")
        }
        // LAPACK's sizes are 32-bit, and its workspace for n grows as 1 + 6n + 2n².
        guard n <= 16_384 else { throw EngineError(.tooLarge, "symmetricEigen: a \(n) x \(n) matrix is beyond LAPACK's 32-bit workspace") }
        if let bad = matrix.firstIndex(where: { !$0.isFinite }) {
            throw EngineError(.nonFinite, "symmetricEigen: element [\(bad / n), \(bad % n)] is \(matrix[bad])")
        }
        if n == 0 { return ([], []) }
        try load()
        var vectors = matrix, values = [Double](repeating: 0, count: n)
        let n32 = Int32(n)
        // A first call with lwork = liwork = -1 only reports the workspace sizes it needs.
        var workSize = [Double](repeating: 0, count: 1), iworkSize = [Int32](repeating: 0, count: 1)
        var info = kizuki_dsyevd(true, n32, &vectors, n32, &values, &workSize, -1, &iworkSize, -1)
        guard info == 0 else { throw EngineError(.nodeFailed, "dsyevd workspace query failed (info \(info))") }
        var work = [Double](repeating: 0, count: max(1, Int(workSize[0]))), iwork = [Int32](repeating: 0, count: max(1, Int(iworkSize[0])))
        info = kizuki_dsyevd(true, n32, &vectors, n32, &values, &work, Int32(work.count), &iwork, Int32(iwork.count))
        guard info == 0 else {
            throw EngineError(.nodeFailed, info > 0 ? "dsyevd did not converge on a \(n) x \(n) matrix (info \(info))"
                                                    : "dsyevd rejected argument \(-info)")
        }
        return (values, vectors)
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

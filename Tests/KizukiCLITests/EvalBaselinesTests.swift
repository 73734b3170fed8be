import Anomaly
import Foundation
import XCTest

/// `kizuki eval` shows the raw-pixel and PCA baselines beside the model's AUC, in its table and its report;
/// `--no-baselines` leaves them out and `--pca-components` sets the PCA's size. Small anchor counts keep
/// each run to a few seconds (the test images are embedded once per batch size whatever the anchors).
final class EvalBaselinesTests: CLITestCase {
    func requireData() throws {
        let dir = FashionMNIST.directory(nil)
        guard ["t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte"].contains(where: {
            FileManager.default.fileExists(atPath: dir.appendingPathComponent($0).path)
        }) else { throw XCTSkip("Fashion-MNIST not installed (make deps installs dataset-fashion-mnist)") }
    }

    /// The table's row for `anchors`, split into its columns.
    func row(_ out: String, anchors: Int) throws -> [String] {
        let line = try XCTUnwrap(out.split(separator: "\n").first { $0.split(separator: " ").first.map(String.init) == "\(anchors)" }, out)
        return line.split(separator: " ").map(String.init)
    }

    func testTableAndReportShowTheBaselines() throws {
        try requireData()
        let report = path("r.html")
        let r = try kizuki("eval", Self.seed, "--anchors", "100,50", "--batch", "20", "--quiet", "--report", report)
        XCTAssertEqual(r.status, 0, r.err)
        let header = try XCTUnwrap(r.out.split(separator: "\n").first { $0.hasPrefix("anchors") }, r.out)
        XCTAssertTrue(header.contains("AUC  raw pixels    PCA-64"), String(header))
        // Columns: anchors, model AUC, raw pixels, PCA (starred with N - 1 components), ms per image.
        let full = try row(r.out, anchors: 100), few = try row(r.out, anchors: 50)
        XCTAssertEqual(full.count, 5, "\(full)")
        XCTAssertFalse(full[3].hasSuffix("*"), "100 anchors leave 99 >= 64 components")
        XCTAssertTrue(few[3].hasSuffix("*"), "50 anchors: 49 components, starred")
        XCTAssertTrue(r.out.contains("* PCA-64 with N − 1 components where there are only N ≤ 64 anchors"), r.out)
        XCTAssertTrue(r.out.contains("49 at 50 anchors."), r.out)
        XCTAssertTrue(r.out.contains("raw pixels = mean Euclidean distance of the pixels / 255"), r.out)

        // The columns hold what the library computes on the same split.
        let split = try FashionMNIST.experiment(normal: 7, anomaly: 9, from: FashionMNIST.directory(nil))
        for (n, cells) in [(100, full), (50, few)] {
            let aucs = try Baselines.evaluate(anchors: split.anchors.prefix(n), test: split.test, k: 1, pcaComponents: 64)
            XCTAssertEqual(cells[2], String(format: "%.4f", aucs.rawPixels), "raw pixels at \(n) anchors")
            XCTAssertEqual(cells[3], String(format: "%.4f", aucs.pca) + (n == 50 ? "*" : ""), "PCA at \(n) anchors")
        }

        let html = try String(contentsOfFile: report, encoding: .utf8)
        XCTAssertTrue(html.contains("<th>AUC model</th><th>AUC raw pixels</th><th>AUC PCA-64</th>"))
        XCTAssertTrue(html.contains("<td>\(few[2])</td><td>\(few[3])</td>"), "the starred row in the report")
        XCTAssertTrue(html.contains("49 at 50 anchors."))
    }

    func testNoBaselinesRemovesTheColumns() throws {
        try requireData()
        let report = path("r.html")
        let r = try kizuki("eval", Self.seed, "--anchors", "50", "--batch", "20", "--quiet", "--no-baselines", "--report", report)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertFalse(r.out.contains("raw pixels"), r.out)
        XCTAssertFalse(r.out.contains("PCA"), r.out)
        XCTAssertEqual(try row(r.out, anchors: 50).count, 3, "anchors, AUC, ms per image")
        let html = try String(contentsOfFile: report, encoding: .utf8)
        XCTAssertFalse(html.contains("raw pixels"))
        XCTAssertFalse(html.contains("PCA"))
    }

    func testPCAComponentsAndK() throws {
        try requireData()
        let r = try kizuki("eval", Self.seed, "--anchors", "10,5", "--batch", "20", "--k", "2", "--pca-components", "8", "--quiet")
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("PCA-8"), r.out)
        XCTAssertFalse(try row(r.out, anchors: 10)[3].hasSuffix("*"))
        XCTAssertTrue(try row(r.out, anchors: 5)[3].hasSuffix("*"))
        XCTAssertTrue(r.out.contains("4 at 5 anchors."), r.out)
        // The raw-pixel baseline takes the model's k.
        let split = try FashionMNIST.experiment(normal: 7, anomaly: 9, from: FashionMNIST.directory(nil))
        let aucs = try Baselines.evaluate(anchors: split.anchors.prefix(10), test: split.test, k: 2, pcaComponents: 8)
        XCTAssertEqual(try row(r.out, anchors: 10)[2], String(format: "%.4f", aucs.rawPixels))
    }

    func testBadPCAComponentsAreRefused() throws {
        for bad in ["0", "-3", "785"] {
            assertRefused(try kizuki("eval", Self.seed, "--pca-components=\(bad)"), "--pca-components must be between 1 and 784", "got \(bad)")
        }
        assertRefused(try kizuki("eval", Self.seed, "--pca-components", "8", "--no-baselines"), "--no-baselines", "give one of them")
        assertRefused(try kizuki("eval", Self.seed, "--pca-components", "x"), "--pca-components")
    }

    /// LAPACK is optional in the loader: an OpenBLAS without it (here a stand-in library with the BLAS symbols
    /// Kizuki requires, naive gemms and no dsyevd_, found first through LD_LIBRARY_PATH) still runs the model
    /// and `eval --no-baselines`, and the PCA baseline fails saying what is missing.
    func testWithoutLAPACKThePCABaselineFailsClearly() throws {
        try requireData()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/cc") else { throw XCTSkip("no C compiler at /usr/bin/cc") }
        let source = tmp.appendingPathComponent("fake_openblas.c")
        try """
        enum { NO_TRANS = 111 };
        #define GEMM(name, T) \\
            void name(int order, int ta, int tb, int m, int n, int k, T alpha, const T *a, int lda, const T *b, int ldb, \\
                      T beta, T *c, int ldc) { \\
                for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) { \\
                    T s = 0; \\
                    for (int p = 0; p < k; p++) \\
                        s += (ta == NO_TRANS ? a[i * lda + p] : a[p * lda + i]) * (tb == NO_TRANS ? b[p * ldb + j] : b[j * ldb + p]); \\
                    c[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * c[i * ldc + j]); \\
                } \\
            }
        GEMM(cblas_sgemm, float)
        GEMM(cblas_dgemm, double)
        void openblas_set_num_threads(int n) { (void)n; }
        char *openblas_get_corename(void) { return "Fake"; }
        char *openblas_get_config(void) { return "OpenBLAS 0.0 NO_LAPACK (a test stand-in)"; }
        """.write(to: source, atomically: true, encoding: .utf8)
        let compiled = try run(URL(fileURLWithPath: "/usr/bin/cc"),
                               ["-shared", "-fPIC", "-O2", "-o", path("libopenblas.so.0"), source.path])
        XCTAssertEqual(compiled.status, 0, compiled.err)
        let environment = ["LD_LIBRARY_PATH": tmp.path]
        let version = try kizuki(["--version"], environment: environment)
        XCTAssertTrue(version.out.contains(path("libopenblas.so.0")), "the stand-in should be the OpenBLAS loaded: \(version.out)")

        let without = try kizuki(["eval", Self.seed, "--anchors", "5", "--batch", "20", "--quiet", "--no-baselines"], environment: environment)
        XCTAssertEqual(without.status, 0, without.err)
        assertRefused(try kizuki(["eval", Self.seed, "--anchors", "5", "--batch", "20", "--quiet"], environment: environment),
                      "the baselines at 5 anchors failed: OpenBLAS at \(path("libopenblas.so.0")) has no LAPACK (symbol dsyevd_ missing",
                      "apt-get install libopenblas0", "--no-baselines leaves them out")
    }
}

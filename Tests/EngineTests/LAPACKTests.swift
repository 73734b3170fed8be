import CBLAS
import XCTest
@testable import Engine

/// LAPACK's symmetric eigensolver as Kizuki calls it (dsyevd from the LAPACK bundled in OpenBLAS, through
/// Fortran's column-major interface on row-major arrays), checked without LAPACK: A v = λ v row by row,
/// orthonormal vectors, ascending values, and a matrix with known eigenvalues.
final class LAPACKTests: XCTestCase {
    /// Largest |A v − λ v| over all pairs, and largest |V Vᵀ − I|, by plain loops.
    func residuals(_ a: [Double], n: Int, values: [Double], vectors: [Double]) -> (eigen: Double, orthonormal: Double) {
        var eigen = 0.0, orthonormal = 0.0
        for e in 0..<n {
            for i in 0..<n {
                var av = 0.0
                for j in 0..<n { av += a[i * n + j] * vectors[e * n + j] }
                eigen = max(eigen, abs(av - values[e] * vectors[e * n + i]))
            }
            for f in 0..<n {
                var dot = 0.0
                for j in 0..<n { dot += vectors[e * n + j] * vectors[f * n + j] }
                orthonormal = max(orthonormal, abs(dot - (e == f ? 1 : 0)))
            }
        }
        return (eigen, orthonormal)
    }

    func randomSymmetric(_ n: Int, seed: UInt64) -> [Double] {
        var random = TestRandom(seed)
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                let v = Double(random.float())
                a[i * n + j] = v
                a[j * n + i] = v
            }
        }
        return a
    }

    func testLAPACKIsAvailable() throws {
        XCTAssertNoThrow(try LAPACK.load(), "OpenBLAS at \(BLAS.path) should bundle LAPACK (Debian's libopenblas0 does)")
        XCTAssertTrue(kizuki_lapack_load())
    }

    func testKnownMatrix() throws {
        // Eigenvalues 1, 3 (the block [[2, 1], [1, 2]]) and 5, with eigenvectors (1, −1, 0)/√2, (1, 1, 0)/√2, (0, 0, 1).
        let a: [Double] = [2, 1, 0,
                           1, 2, 0,
                           0, 0, 5]
        let (values, vectors) = try LAPACK.symmetricEigen(a, n: 3)
        for (got, want) in zip(values, [1.0, 3, 5]) { XCTAssertEqual(got, want, accuracy: 1e-14) }
        let h = 0.5.squareRoot()
        for (e, want) in [[h, -h, 0], [h, h, 0], [0, 0, 1]].enumerated() {
            // An eigenvector's sign is arbitrary.
            let row = Array(vectors[e * 3..<(e + 1) * 3])
            let sign = row.enumerated().max { abs($0.element) < abs($1.element) }.map { $0.element * want[$0.offset] < 0 ? -1.0 : 1.0 }!
            for (got, w) in zip(row, want) { XCTAssertEqual(sign * got, w, accuracy: 1e-14, "eigenvector \(e): \(row)") }
        }
        let r = residuals(a, n: 3, values: values, vectors: vectors)
        XCTAssertLessThan(r.eigen, 1e-14)
        XCTAssertLessThan(r.orthonormal, 1e-14)
    }

    func testRandomSymmetricMatrices() throws {
        for (n, seed) in [(1, 1), (2, 2), (60, 3), (200, 4)] as [(Int, UInt64)] {
            let a = randomSymmetric(n, seed: seed)
            let (values, vectors) = try LAPACK.symmetricEigen(a, n: n)
            XCTAssertEqual(values, values.sorted(), "eigenvalues ascend")
            let r = residuals(a, n: n, values: values, vectors: vectors)
            XCTAssertLessThan(r.eigen, 1e-12 * Double(n), "n = \(n)")
            XCTAssertLessThan(r.orthonormal, 1e-12 * Double(n), "n = \(n)")
            // The trace is the sum of the eigenvalues.
            let trace = (0..<n).reduce(0.0) { $0 + a[$1 * n + $1] }
            XCTAssertEqual(values.reduce(0, +), trace, accuracy: 1e-12 * Double(n))
        }
    }

    /// Repeated eigenvalues (a covariance of fewer images than pixels has many zeros): the vectors of one
    /// eigenvalue must still be orthonormal.
    func testRepeatedEigenvalues() throws {
        let n = 40
        // Q diag(0, ..., 0, 1, 2, 3) Qᵀ, Q orthogonal from the eigenvectors of a random symmetric matrix.
        let q = try LAPACK.symmetricEigen(randomSymmetric(n, seed: 9), n: n).vectors
        let diagonal = (0..<n).map { $0 < n - 3 ? 0.0 : Double($0 - (n - 4)) }
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { for e in 0..<n { a[i * n + j] += q[e * n + i] * diagonal[e] * q[e * n + j] } } }
        let (values, vectors) = try LAPACK.symmetricEigen(a, n: n)
        for (got, want) in zip(values, diagonal) { XCTAssertEqual(got, want, accuracy: 1e-12) }
        let r = residuals(a, n: n, values: values, vectors: vectors)
        XCTAssertLessThan(r.eigen, 1e-12)
        XCTAssertLessThan(r.orthonormal, 1e-12)
    }

    /// Row-major in, as documented: only the lower triangle is read (LAPACK's upper, column-major).
    func testReadsTheLowerTriangleOnly() throws {
        let n = 30
        let a = randomSymmetric(n, seed: 11)
        var lower = a
        for i in 0..<n { for j in (i + 1)..<n { lower[i * n + j] = 1000 } }
        let expected = try LAPACK.symmetricEigen(a, n: n), got = try LAPACK.symmetricEigen(lower, n: n)
        XCTAssertEqual(got.values, expected.values)
        XCTAssertEqual(got.vectors, expected.vectors)
    }

    func testRefusals() throws {
        XCTAssertThrowsError(try LAPACK.symmetricEigen([1, 2, 3], n: 2)) { XCTAssertTrue("\($0)".contains("3 values are not a 2 x 2 matrix"), "\($0)") }
        XCTAssertThrowsError(try LAPACK.symmetricEigen([1, .nan, .nan, 1], n: 2)) { XCTAssertTrue("\($0)".contains("[0, 1] is nan"), "\($0)") }
        XCTAssertThrowsError(try LAPACK.symmetricEigen([], n: -1))
        let empty = try LAPACK.symmetricEigen([], n: 0)
        XCTAssertEqual(empty.values, [])
        XCTAssertEqual(empty.vectors, [])
    }
}

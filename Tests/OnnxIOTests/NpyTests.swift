import Foundation
import XCTest
@testable import OnnxIO

/// Reads .npy files written by NumPy (tools/make_npy_fixtures.py): each holds arange(n)/4 in its dtype.
final class NpyTests: XCTestCase {
    let dir = TestPaths.root.appendingPathComponent("Tests/OnnxIOTests/Fixtures")

    func expected(_ n: Int) -> [Double] { (0..<n).map { Double($0) / 4 } }

    func testReadsEveryDtypeNumpyWrites() throws {
        let f4 = try Npy.read(dir.appendingPathComponent("arange_f4_2x3x4.npy"))
        XCTAssertEqual(f4.dataType, .float)
        XCTAssertEqual(f4.dims, [2, 3, 4])
        XCTAssertEqual(f4.floats.map(Double.init), expected(24))
        let f8 = try Npy.read(dir.appendingPathComponent("arange_f8_2x3x4.npy"))
        XCTAssertEqual(f8.elements(as: Double.self), expected(24))
        let i8 = try Npy.read(dir.appendingPathComponent("arange_i8_2x3x4.npy"))
        XCTAssertEqual(i8.int64s, expected(24).map { Int64($0.rounded(.towardZero)) })
        let i4 = try Npy.read(dir.appendingPathComponent("arange_i4_2x3x4.npy"))
        XCTAssertEqual(i4.elements(as: Int32.self), expected(24).map { Int32($0.rounded(.towardZero)) })
        let u1 = try Npy.read(dir.appendingPathComponent("arange_u1_2x3x4.npy"))
        XCTAssertEqual(u1.elements(as: UInt8.self), expected(24).map { UInt8($0.rounded(.towardZero)) })
        let b = try Npy.read(dir.appendingPathComponent("bool_5.npy"))
        XCTAssertEqual(b.dataType, .bool)
        XCTAssertEqual(b.elements(as: UInt8.self), [1, 0, 1, 1, 0])
        let scalar = try Npy.read(dir.appendingPathComponent("scalar_f4.npy"))
        XCTAssertEqual(scalar.dims, [])
        XCTAssertEqual(scalar.floats, [2.5])
        let empty = try Npy.read(dir.appendingPathComponent("empty_f4_0x3.npy"))
        XCTAssertEqual(empty.dims, [0, 3])
        XCTAssertEqual(empty.data.count, 0)
    }

    func testFormatVersions2And3() throws {
        for v in [2, 3] {
            let t = try Npy.read(dir.appendingPathComponent("arange_f4_v\(v).npy"))
            XCTAssertEqual(t.dims, [3, 2])
            XCTAssertEqual(t.floats.map(Double.init), expected(6))
        }
    }

    func testRefusesFortranOrderAndBigEndian() {
        XCTAssertThrowsError(try Npy.read(dir.appendingPathComponent("fortran_f4.npy"))) {
            XCTAssertTrue("\($0)".contains("Fortran"), "\($0)")
            XCTAssertTrue("\($0)".contains("fortran_f4.npy"), "\($0)")
        }
        XCTAssertThrowsError(try Npy.read(dir.appendingPathComponent("bigendian_f4.npy"))) {
            XCTAssertTrue("\($0)".contains("big-endian"), "\($0)")
        }
    }

    func testHeaderSizesThatOverflowAreRefusedClearly() {
        func npy(_ shape: String) -> Data {
            let header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }\n"
            return Data(Npy.magic + [1, 0, UInt8(header.utf8.count), 0]) + Data(header.utf8) + Data(count: 8)
        }
        XCTAssertThrowsError(try Npy.decode(npy("(4294967296, 4294967296, 4294967296)"), file: "big.npy")) {
            XCTAssertTrue("\($0)".contains("big.npy") && "\($0)".contains("more elements than can be counted"), "\($0)")
        }
        // Elements countable, bytes not: 2^62 float32.
        XCTAssertThrowsError(try Npy.decode(npy("(4611686018427387904,)"), file: "big.npy")) {
            XCTAssertTrue("\($0)".contains("more bytes than can be counted"), "\($0)")
        }
    }

    func testWriteThenReadIsIdentityAndTruncationIsCaught() throws {
        let t = Tensor(floats: [1, -2, 3.5, .pi, 0, 7], dims: [2, 3])
        let bytes = try Npy.encode(t)
        let back = try Npy.decode(bytes)
        XCTAssertEqual(back.dims, [2, 3])
        XCTAssertEqual(back.floats, t.floats)
        // Header must be 64-byte aligned as NumPy writes it.
        XCTAssertEqual((bytes.count - t.data.count) % 64, 0)
        XCTAssertThrowsError(try Npy.decode(bytes.dropLast(3)))
        XCTAssertThrowsError(try Npy.decode(Data("hello".utf8)))
    }
}

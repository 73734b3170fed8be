import XCTest
@testable import kizuki

/// `--memory-limit` reaches the session's memory budget in the units users write.
final class MemoryLimitOptionTests: XCTestCase {
    func testSizesAndUnits() throws {
        XCTAssertEqual(try EngineOptions.byteCount("4096"), 4096)
        XCTAssertEqual(try EngineOptions.byteCount("512K"), 512 << 10)
        XCTAssertEqual(try EngineOptions.byteCount("512M"), 512 << 20)
        XCTAssertEqual(try EngineOptions.byteCount("8G"), 8 << 30)
        XCTAssertEqual(try EngineOptions.byteCount("8gib"), 8 << 30)
        XCTAssertEqual(try EngineOptions.byteCount("1.5T"), 3 << 39)
        for bad in ["", "G", "0", "-1G", "nan", "inf", "12Q", "99999999T"] {
            XCTAssertThrowsError(try EngineOptions.byteCount(bad), "'\(bad)'")
        }
    }

    func testReachesTheSession() throws {
        XCTAssertEqual(try EngineOptions.parse(["--memory-limit", "64M"]).sessionOptions.memoryBudget, 64 << 20)
        let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        XCTAssertEqual(try EngineOptions.parse([]).sessionOptions.memoryBudget, physical / 2)
        XCTAssertThrowsError(try EngineOptions.parse(["--memory-limit", "lots"]))
    }
}

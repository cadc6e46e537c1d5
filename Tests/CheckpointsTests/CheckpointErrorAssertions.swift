import XCTest
@testable import Checkpoints

/// Asserts `body` throws a `CheckpointError` accepted by `match` whose description names every string in `names`
/// (bad input is a typed error that names the file, tensor or key: never a crash, never an untyped error).
func assertCheckpointError(_ body: @autoclosure () throws -> Any, names: [String], file: StaticString = #filePath,
                           line: UInt = #line, _ match: (CheckpointError) -> Bool) {
    do {
        _ = try body()
        XCTFail("expected an error", file: file, line: line)
    } catch let error as CheckpointError {
        XCTAssertTrue(match(error), "wrong error: \(error)", file: file, line: line)
        for n in names { XCTAssertTrue(error.description.contains(n), "'\(error)' does not name \(n)", file: file, line: line) }
    } catch {
        XCTFail("untyped error \(error)", file: file, line: line)
    }
}

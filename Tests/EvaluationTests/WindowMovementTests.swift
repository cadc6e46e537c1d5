import Evaluation
import XCTest

/// `WindowMovement` on hand-computed values.
final class WindowMovementTests: XCTestCase {
    func testSummaryOfHandComputedWindows() {
        // Relative moves 1/256, 1/32, 1/32 (an exact tie: the first is the worst) and 0, all exact in binary.
        let reference: [Double] = [2, 4, 1, 8], other: [Double] = [2.0078125, 3.875, 1.03125, 8]
        let m = WindowMovement(reference: reference, other: other)
        XCTAssertEqual(m.windows, 4)
        XCTAssertEqual(m.meanRelative, (1.0 / 256 + 1.0 / 32 + 1.0 / 32) / 4)
        XCTAssertEqual(m.maxRelative, 1.0 / 32)
        XCTAssertEqual(m.worstWindow, 1)
        XCTAssertEqual(m.windowsOverThreshold, 2)
        XCTAssertEqual(WindowMovement(reference: reference, other: other, threshold: 0.003).windowsOverThreshold, 3)
    }

    func testNoWindows() {
        let m = WindowMovement(reference: [], other: [])
        XCTAssertEqual(m.windows, 0)
        XCTAssertEqual(m.meanRelative, 0)
        XCTAssertEqual(m.maxRelative, 0)
        XCTAssertNil(m.worstWindow)
        XCTAssertEqual(m.windowsOverThreshold, 0)
    }
}

import XCTest
@testable import Pruning

final class ScheduleTests: XCTestCase {
    /// Cosine without warm-up = PyTorch CosineAnnealingLR(T_max = 15000, eta_min = 0) at hand-computed points.
    func testCosine() {
        let s = LearningRateSchedule(initial: 2e-3, policy: .cosine, totalSteps: 15000)
        XCTAssertEqual(s.rate(atStep: 0), 2e-3)
        XCTAssertEqual(s.rate(atStep: 3750), 2e-3 * (1 + 0.5.squareRoot()) / 2, accuracy: 1e-15)   // cos(π/4)
        XCTAssertEqual(s.rate(atStep: 7500), 1e-3, accuracy: 1e-15)
        XCTAssertEqual(s.rate(atStep: 11250), 2e-3 * (1 - 0.5.squareRoot()) / 2, accuracy: 1e-15)
        XCTAssertEqual(s.rate(atStep: 15000), 0)
        XCTAssertEqual(s.rate(atStep: 20000), 0)
        let floorRate = LearningRateSchedule(initial: 1, policy: .cosine, totalSteps: 4, minimum: 0.2)
        XCTAssertEqual(floorRate.rate(atStep: 2), 0.2 + 0.8 * 0.5, accuracy: 1e-15)
        XCTAssertEqual(floorRate.rate(atStep: 4), 0.2)
    }

    /// Warm-up: η_0 · t/W for t < W (step 0 uses 0), then cosine over the remaining total − W steps.
    func testWarmupThenCosineAndConstant() {
        let s = LearningRateSchedule(initial: 6e-3, policy: .cosine, totalSteps: 110, warmupSteps: 10)
        XCTAssertEqual(s.rate(atStep: 0), 0)
        XCTAssertEqual(s.rate(atStep: 5), 3e-3, accuracy: 1e-15)
        XCTAssertEqual(s.rate(atStep: 10), 6e-3, accuracy: 1e-15)
        XCTAssertEqual(s.rate(atStep: 60), 3e-3, accuracy: 1e-15)   // half-way through the cosine: cos(π/2) = 0
        XCTAssertEqual(s.rate(atStep: 110), 0)
        let c = LearningRateSchedule(initial: 1e-3, policy: .constant, totalSteps: 100, warmupSteps: 4)
        XCTAssertEqual(c.rate(atStep: 2), 5e-4, accuracy: 1e-18)
        XCTAssertEqual(c.rate(atStep: 4), 1e-3)
        XCTAssertEqual(c.rate(atStep: 1000), 1e-3)
    }

    /// Cubic progressive keep ratio (spec §1.11): ρ_t = ρ_T + (ρ_S − ρ_T)(1 − (t − t_s)/(t_e − t_s))³.
    func testCubicKeepRatio() {
        let s = KeepRatioSchedule(start: 1.0, target: 0.7, startStep: 0, endStep: 100)
        XCTAssertEqual(s.keepRatio(atStep: 0), 1.0)
        XCTAssertEqual(s.keepRatio(atStep: 50), 0.7 + 0.3 * 0.125, accuracy: 1e-15)
        XCTAssertEqual(s.keepRatio(atStep: 75), 0.7 + 0.3 * 0.015625, accuracy: 1e-15)
        XCTAssertEqual(s.keepRatio(atStep: 100), 0.7)
        XCTAssertEqual(s.keepRatio(atStep: 500), 0.7)
        let delayed = KeepRatioSchedule(start: 0.9, target: 0.5, startStep: 10, endStep: 20)
        XCTAssertEqual(delayed.keepRatio(atStep: 5), 0.9)
        XCTAssertEqual(delayed.keepRatio(atStep: 10), 0.9)
        XCTAssertEqual(delayed.keepRatio(atStep: 15), 0.5 + 0.4 * 0.125, accuracy: 1e-15)
        XCTAssertEqual(KeepRatioSchedule.constant(0.6).keepRatio(atStep: 0), 0.6)
        XCTAssertEqual(KeepRatioSchedule.constant(0.6).keepRatio(atStep: 123), 0.6)
    }
}

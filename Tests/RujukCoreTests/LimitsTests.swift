import Foundation
import RujukCore
import Testing

@Suite(.timeLimit(.minutes(3))) struct LimitsTests {
    @Test func repeatLimiterLetsTheFirstLinesThroughThenSummarizesTheRestOnce() {
        let clock = ManualClock()
        var limiter = RepeatLimiter(limit: 3, interval: 60)
        let first = (0..<1000).map { _ in limiter.admit("unknown_key", now: clock.now()) }
        #expect(first.prefix(3).allSatisfy { $0 == .log(suppressed: 0) })
        #expect(first.dropFirst(3).allSatisfy { $0 == .suppress })
        // Another kind has its own allowance.
        #expect(limiter.admit("not_party", now: clock.now()) == .log(suppressed: 0))
        #expect(limiter.summaries(now: clock.now()).isEmpty, "nothing is summed up before the interval ends")
        clock.advance(by: 60)
        let summaries = limiter.summaries(now: clock.now())
        #expect(summaries.count == 1 && summaries.first?.kind == "unknown_key" && summaries.first?.suppressed == 997)
        #expect(limiter.summaries(now: clock.now()).isEmpty, "each suppression is reported once")
        #expect(limiter.admit("unknown_key", now: clock.now()) == .log(suppressed: 0))
    }

    @Test func repeatLimiterReportsSuppressedLinesWithTheNextLineWhenNoSummaryRan() {
        let clock = ManualClock()
        var limiter = RepeatLimiter(limit: 1, interval: 10)
        #expect(limiter.admit("k", now: clock.now()) == .log(suppressed: 0))
        #expect(limiter.admit("k", now: clock.now()) == .suppress)
        #expect(limiter.admit("k", now: clock.now()) == .suppress)
        clock.advance(by: 10)
        #expect(limiter.admit("k", now: clock.now()) == .log(suppressed: 2))
    }

    @Test func securityEventsCountEveryEventButLogABoundedNumber() {
        let clock = ManualClock()
        let events = SecurityEvents(clock: clock, linesPerInterval: 5, interval: 60)
        let logged = (0..<3000).filter { _ in events.record(.unknownKey) != .suppress }.count
        _ = events.record(.notParty)
        #expect(logged == 5)
        #expect(events.snapshot == ["unknown_key": 3000, "not_party": 1])
        clock.advance(by: 61)
        #expect(events.summaries().map(\.suppressed) == [2995])
    }

    @Test func tokenBucketAllowsTheBurstThenTheRate() {
        var bucket = TokenBucket(rate: 100, burst: 10, now: 0)
        func takes(_ cost: Double = 1, at now: UInt64) -> Bool { bucket.take(cost, now: now) }
        #expect((0..<10).allSatisfy { _ in takes(at: 0) })
        #expect(!takes(at: 0))
        // 100 a second is one per 10 ms.
        #expect(!takes(at: 9))
        #expect(takes(at: 10))
        #expect(!takes(at: 10))
        // Idle time saves up to the burst, no more.
        #expect((0..<10).allSatisfy { _ in takes(at: 10_000) })
        #expect(!takes(at: 10_000))
        #expect(!takes(5, at: 10_040))
        #expect(takes(4, at: 10_040))
    }
}

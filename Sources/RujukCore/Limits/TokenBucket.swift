/// A token bucket: `rate` tokens a second, at most `burst` saved up. Each message takes its
/// cost in tokens; one that finds too few is over the limit.
///
/// Time is the caller's monotonic milliseconds, so the check is O(1) arithmetic with no clock
/// call of its own, and tests pass the time in.
public struct TokenBucket: Sendable {
    public let rate: Double
    public let burst: Double
    private var tokens: Double
    private var updated: UInt64

    /// Starts full at `now`.
    public init(rate: Double, burst: Double, now: UInt64) {
        precondition(rate > 0 && burst >= 1)
        self.rate = rate
        self.burst = burst
        tokens = burst
        updated = now
    }

    /// Takes `cost` tokens if there are that many; false (and takes none) if not.
    public mutating func take(_ cost: Double = 1, now: UInt64) -> Bool {
        if now > updated {
            tokens = min(burst, tokens + Double(now - updated) * rate / 1000)
            updated = now
        }
        guard tokens >= cost else { return false }
        tokens -= cost
        return true
    }
}

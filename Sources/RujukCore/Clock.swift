import Foundation

/// Where time comes from. Production uses `SystemClock`; tests and the demo inject their own,
/// so an SLA breach can be produced without waiting for it.
public protocol Clock: Sendable {
    func now() -> Date
}

/// The wall clock.
public struct SystemClock: Clock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that moves only when told to, for tests.
public final class ManualClock: Clock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    public init(_ start: Date = Date(timeIntervalSince1970: 1_795_000_000)) {
        current = start
    }

    public func now() -> Date { lock.withLock { current } }

    public func advance(by seconds: TimeInterval) {
        lock.withLock { current += seconds }
    }
}

/// A clock that runs `factor` times faster than the wall clock from the moment it is made,
/// for the demo: with 600, an hour's deadline passes in six seconds.
public final class AcceleratedClock: Clock, @unchecked Sendable {
    private let origin: Date
    private let started: UInt64
    public let factor: Double

    public init(factor: Double, origin: Date = Date()) {
        self.origin = origin
        self.started = DispatchTime.now().uptimeNanoseconds
        self.factor = factor
    }

    public func now() -> Date {
        origin + Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 * factor
    }
}

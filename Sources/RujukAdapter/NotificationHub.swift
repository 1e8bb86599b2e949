import Foundation
import RujukCore

/// Wakes whoever streams notifications (SSE connections, the webhook sender) when the ledger
/// gains some. It carries no data: readers always read the ledger, so a missed wake-up only
/// delays, never loses.
public final class NotificationHub: Sendable {
    private let subscribers = Locked<[UUID: AsyncStream<Void>.Continuation]>([:])

    public init() {}

    public func poke() {
        for continuation in subscribers.current.values { continuation.yield() }
    }

    /// A stream that yields after each poke, until the task reading it ends.
    public func subscribe() -> AsyncStream<Void> {
        let id = UUID()
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        continuation.onTermination = { [subscribers] _ in subscribers.withLock { _ = $0.removeValue(forKey: id) } }
        subscribers.withLock { $0[id] = continuation }
        return stream
    }

    public func finishAll() {
        for continuation in subscribers.current.values { continuation.finish() }
    }
}

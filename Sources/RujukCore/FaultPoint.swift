import Foundation

/// Crash points for the fault suite (`make faults`), in the manner of FoundationDB's buggify or
/// etcd's gofail: places where a crash is the hardest to survive, named so that a test can make
/// the process die exactly there instead of hoping a random SIGKILL lands in a window of a few
/// microseconds.
///
/// Unarmed (the environment does not name the point) a hit costs one comparison. Armed with
/// `RUJUK_CRASH_AT=<point>:<n>`, the process sends itself SIGKILL the n-th time it reaches the
/// point — no cleanup, no flush, exactly what `kill -9` or a power cut would leave.
public enum FaultPoint: String, Sendable, CaseIterable {
    /// Adapter: a batch of deliveries is committed in the ledger, its RECEIPT not yet sent.
    case deliveryStored = "delivery-stored"
    /// Adapter: REFER/UPDATE messages sent from the outbox, their COMMIT not yet received.
    case outboxSent = "outbox-sent"
    /// Adapter: a COMMIT received from the broker, not yet recorded in the ledger.
    case commitReceived = "commit-received"
    /// Broker: a group commit's transaction committed, its COMMIT acks not yet sent.
    case groupCommitted = "group-committed"
    /// Adapter: a webhook POST answered 2xx, its round's outcomes not yet recorded.
    case webhookPosted = "webhook-posted"
    /// Adapter: a new API token written to its temporary file, not yet renamed into place.
    case tokenFileWritten = "token-file-written"

    /// The environment variable that arms a point.
    public static let environmentKey = "RUJUK_CRASH_AT"

    private static let armed: (point: FaultPoint, count: Int)? = {
        guard let value = ProcessInfo.processInfo.environment[environmentKey] else { return nil }
        let parts = value.split(separator: ":", maxSplits: 1).map(String.init)
        guard let point = FaultPoint(rawValue: parts[0]) else { return nil }
        return (point, parts.count == 2 ? max(1, Int(parts[1]) ?? 1) : 1)
    }()
    private static let hits = Locked(0)

    /// Dies here if this point is armed and this is its n-th hit.
    @inline(__always)
    public func reached() {
        guard let armed = Self.armed, armed.point == self else { return }
        let hit = Self.hits.withLock { count in
            count += 1
            return count
        }
        if hit == armed.count { kill(getpid(), SIGKILL) }
    }
}

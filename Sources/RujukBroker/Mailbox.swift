import DequeModule
import RujukCore

/// One agency's mailbox as the router thread holds it.
///
/// The store is the mailbox; this is a window on it. Only agencies with a session keep
/// entries in memory, at most `capacity` of them; the rest stay in the store and are read in
/// order as the window empties. So memory stays bounded whatever the backlog, and a broker
/// restart has nothing to load until an agency connects.
struct Mailbox {
    /// Entries read from the store (or committed while the agency was connected), not yet sent.
    var queue = Deque<MailboxEntry>()
    /// Sent on the current session and not yet receipted, by message id.
    var inFlight: [String: MailboxEntry] = [:]
    /// The highest delivery seq read into memory; the store holds the rest after it.
    var loadedThrough: Int64 = 0
    /// Whether the store may hold pending entries after `loadedThrough`.
    var more = true

    /// Takes a newly committed entry: into memory if the window has room and nothing older
    /// waits in the store, otherwise it stays in the store for later.
    mutating func append(_ entry: MailboxEntry, capacity: Int, connected: Bool) {
        // Read from the store already: its commit became visible before the router heard of it.
        if entry.seq <= loadedThrough { return }
        if connected, !more, queue.count < capacity {
            queue.append(entry)
            loadedThrough = entry.seq
        } else {
            more = true
        }
    }

    /// Deliveries sent and not yet receipted, with how often they were sent, across sessions
    /// (not across broker restarts), so a redelivery carries a higher `attempt`. Bounded by
    /// the credit: only what was sent and not receipted is here.
    var attempts: [String: Int] = [:]

    /// The next attempt number for a delivery about to be sent.
    mutating func nextAttempt(_ messageID: String) -> Int {
        let attempt = (attempts[messageID] ?? 0) + 1
        attempts[messageID] = attempt
        return attempt
    }

    /// A RECEIPT for this delivery: it leaves the window for good.
    mutating func receipted(_ messageID: String) {
        inFlight.removeValue(forKey: messageID)
        attempts.removeValue(forKey: messageID)
    }

    /// The RECEIPT for these deliveries could not be stored (the store cannot write): they go
    /// out again, in order, ahead of what waits, and the recipient — which has them already —
    /// answers with another RECEIPT. Without this they would sit in flight, unreceipted at the
    /// broker, until the agency's next session.
    mutating func sendAgain(_ messageIDs: [String]) {
        let entries = messageIDs.compactMap { inFlight.removeValue(forKey: $0) }.sorted { $0.seq < $1.seq }
        queue.insert(contentsOf: entries, at: 0)
    }

    /// Forgets the in-memory window (the agency went away); the store still has everything.
    mutating func release() {
        queue.removeAll()
        inFlight.removeAll()
        loadedThrough = 0
        more = true
    }
}

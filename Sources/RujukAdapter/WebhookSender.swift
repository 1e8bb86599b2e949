import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
import Logging
import RujukCore

/// Delivers notifications to the agency system's webhook, in order, with retries and
/// exponential backoff. Each POST carries `Idempotency-Key: rujuk-<agency>-<seq>` so the
/// receiving system can discard a repeat (a retry after a timeout whose first try landed).
///
/// The POSTs go one at a time, in order; what they did is recorded in the ledger once per
/// round of up to `round` notifications, in one transaction, not after each POST. A write
/// transaction per POST waited for the ledger's writer behind the deliveries the link was
/// storing and made a commit (an fsync) of its own: the fault suite's agency system had a
/// backlog of 100,000 after 129 s that way, after 77–84 s with rounds. A crash of the adapter within
/// a round POSTs that round's delivered notifications again, under the same keys, which the
/// receiver drops.
struct WebhookSender: Sendable {
    let configuration: WebhookConfiguration
    let ledger: Ledger
    let hub: NotificationHub
    let logger: Logger

    /// Notifications read, POSTed and recorded together at most: 16 delivered a backlog as
    /// fast as 64 did, and a crash repeats fewer (docs/performance.md).
    static let round = 16

    func run() async {
        let wakeups = hub.subscribe()
        let session = URLSession(configuration: .ephemeral)
        var iterator = wakeups.makeAsyncIterator()
        repeat {
            while !Task.isCancelled, let due = try? nextDue(), !due.isEmpty, await deliver(due, session: session) {}
        } while await iterator.next() != nil && !Task.isCancelled
    }

    private struct Due { var seq: Int64; var payload: Data; var attempts: Int; var dueAt: Date }

    /// The oldest notifications not yet delivered nor given up, in order.
    private func nextDue() throws -> [Due] {
        try ledger.pool.read { db in
            try Row.fetchAll(db.cachedStatement(sql: """
                SELECT seq, payload, webhook_attempts, webhook_next_at FROM notification
                WHERE webhook_done_at IS NULL AND webhook_failed = 0 ORDER BY seq LIMIT ?
                """), arguments: [Self.round]).map { row in
                let next: String? = row[3]
                return Due(seq: row[0], payload: row[1], attempts: row[2], dueAt: next.flatMap(Timestamp.parse) ?? .distantPast)
            }
        }
    }

    /// POSTs `round` in order until one fails or is not due yet, records what happened, and
    /// backs off after a failure. False when the first is not due yet: nothing more to do
    /// until the next notification.
    private func deliver(_ round: [Due], session: URLSession) async -> Bool {
        var delivered: [Due] = []
        var failed: Due?
        for due in round {
            guard due.dueAt <= Date() else { break }
            guard await post(due, session: session) else { failed = due; break }
            delivered.append(due)
            FaultPoint.webhookPosted.reached()
        }
        let attempts = failed.map { $0.attempts + 1 } ?? 0
        let backoff = min(300, pow(2, Double(attempts - 1)))
        let now = Date()
        guard !delivered.isEmpty || failed != nil else { return false }
        do {
            try await ledger.pool.write { [delivered, failed, configuration] db in
                let stamp = Timestamp.format(now)
                let done = try db.cachedStatement(sql: "UPDATE notification SET webhook_attempts = ?, webhook_done_at = ? WHERE seq = ?")
                for due in delivered { try done.execute(arguments: [due.attempts + 1, stamp, due.seq]) }
                guard let failed else { return }
                if attempts >= configuration.maxAttempts {
                    try db.execute(sql: "UPDATE notification SET webhook_attempts = ?, webhook_failed = 1 WHERE seq = ?", arguments: [attempts, failed.seq])
                } else {
                    try db.execute(sql: "UPDATE notification SET webhook_attempts = ?, webhook_next_at = ? WHERE seq = ?", arguments: [attempts, Timestamp.format(now + backoff), failed.seq])
                }
            }
        } catch {
            logger.error("cannot record webhook attempts", metadata: ["error": "\(error)"])
        }
        if let failed {
            logger.warning("webhook delivery failed", metadata: ["notification.seq": "\(failed.seq)", "attempts": "\(attempts)"])
            if attempts < configuration.maxAttempts {
                try? await Task.sleep(for: .seconds(backoff))
            }
        }
        return true
    }

    /// One POST; true for a 2xx answer.
    private func post(_ due: Due, session: URLSession) async -> Bool {
        var request = URLRequest(url: configuration.url, timeoutInterval: configuration.timeout)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("rujuk-\(ledger.agency)-\(due.seq)", forHTTPHeaderField: "Idempotency-Key")
        request.httpBody = due.payload
        do {
            let (_, response) = try await session.data(for: request)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0) / 100 == 2
        } catch {
            return false
        }
    }
}

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
struct WebhookSender: Sendable {
    let configuration: WebhookConfiguration
    let ledger: Ledger
    let hub: NotificationHub
    let logger: Logger

    func run() async {
        let wakeups = hub.subscribe()
        let session = URLSession(configuration: .ephemeral)
        var iterator = wakeups.makeAsyncIterator()
        repeat {
            while !Task.isCancelled, let next = try? nextDue() {
                guard next.dueAt <= Date() else { break }
                await attempt(next, session: session)
            }
        } while await iterator.next() != nil && !Task.isCancelled
    }

    private struct Due { var seq: Int64; var payload: Data; var attempts: Int; var dueAt: Date }

    private func nextDue() throws -> Due? {
        try ledger.pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT seq, payload, webhook_attempts, webhook_next_at FROM notification WHERE webhook_done_at IS NULL AND webhook_failed = 0 ORDER BY seq LIMIT 1") else { return nil }
            let next: String? = row[3]
            return Due(seq: row[0], payload: row[1], attempts: row[2], dueAt: next.flatMap(Timestamp.parse) ?? .distantPast)
        }
    }

    private func attempt(_ due: Due, session: URLSession) async {
        var request = URLRequest(url: configuration.url, timeoutInterval: configuration.timeout)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("rujuk-\(ledger.agency)-\(due.seq)", forHTTPHeaderField: "Idempotency-Key")
        request.httpBody = due.payload
        var delivered = false
        do {
            let (_, response) = try await session.data(for: request)
            delivered = ((response as? HTTPURLResponse)?.statusCode ?? 0) / 100 == 2
        } catch {}
        let attempts = due.attempts + 1
        let now = Date()
        let succeeded = delivered
        do {
            try await ledger.pool.write { db in
                if succeeded {
                    try db.execute(sql: "UPDATE notification SET webhook_attempts = ?, webhook_done_at = ? WHERE seq = ?", arguments: [attempts, Timestamp.format(now), due.seq])
                } else if attempts >= configuration.maxAttempts {
                    try db.execute(sql: "UPDATE notification SET webhook_attempts = ?, webhook_failed = 1 WHERE seq = ?", arguments: [attempts, due.seq])
                } else {
                    let backoff = min(300, pow(2, Double(attempts - 1)))
                    try db.execute(sql: "UPDATE notification SET webhook_attempts = ?, webhook_next_at = ? WHERE seq = ?", arguments: [attempts, Timestamp.format(now + backoff), due.seq])
                }
            }
        } catch {
            logger.error("cannot record webhook attempt", metadata: ["error": "\(error)"])
        }
        if !delivered {
            logger.warning("webhook delivery failed", metadata: ["notification.seq": "\(due.seq)", "attempts": "\(attempts)"])
            if attempts < configuration.maxAttempts {
                try? await Task.sleep(for: .seconds(min(300, pow(2, Double(attempts - 1)))))
            }
        }
    }
}

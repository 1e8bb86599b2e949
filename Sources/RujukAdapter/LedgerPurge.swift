import Foundation
import GRDB
import RujukCore

/// What `purge` removed.
public struct PurgeResult: Sendable, Codable, Equatable {
    /// Handoffs whose personal data was removed.
    public var purged: Int
    /// The cutoff: handoffs closed before it were purged.
    public var closedBefore: Date

    enum CodingKeys: String, CodingKey {
        case purged
        case closedBefore = "closed_before"
    }
}

extension Ledger {
    /// Removes the personal data of handoffs closed (declined, completed, cancelled, or refused
    /// by the broker) before `cutoff`: the person, the consent record and the notes as kept
    /// here (sealed at rest), and the copies sealed for the recipient (the referral as it
    /// travelled, the outbox message, a refused delivery). The envelope stays — ids, agencies, service, priority, location,
    /// deadlines, status and history — so the statistics and the audit trail are intact. A
    /// handoff with a message still waiting in the outbox waits for the next purge.
    ///
    /// Deleted content is overwritten (`secure_delete`, on for the ledger's writer from its
    /// open, so no earlier change left a copy behind either), and the WAL is checkpointed and
    /// truncated, so the bytes do not linger in the file. Safe while the adapter runs.
    public func purge(closedBefore cutoff: Date) throws -> PurgeResult {
        let stamp = Timestamp.format(clock.now())
        let limit = Timestamp.format(cutoff)
        var purged = 0
        try pool.writeWithoutTransaction { db in
            try db.inTransaction {
                let ids = try String.fetchAll(db, sql: """
                    SELECT id FROM referral INDEXED BY referral_purgeable
                    WHERE purged_at IS NULL AND (status = 'declined' OR status = 'completed' OR status = 'cancelled' OR delivery = 'refused') AND updated_at < ?
                    AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.referral_id = referral.id AND o.committed_at IS NULL AND o.refused_code IS NULL)
                    """, arguments: [limit])
                for id in ids {
                    try db.execute(sql: "UPDATE referral SET body = NULL, raw = X'', purged_at = ? WHERE id = ?", arguments: [stamp, id])
                    try db.execute(sql: "UPDATE outbox SET payload = X'' WHERE kind = 'refer' AND referral_id = ?", arguments: [id])
                    try db.execute(sql: "UPDATE refused_delivery SET payload = X'' WHERE message_id = ? AND kind = 'referral'", arguments: [id])
                }
                purged = ids.count
                return .commit
            }
            _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        return PurgeResult(purged: purged, closedBefore: cutoff)
    }
}

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
                for id in ids { try removePersonalData(db, id, stamp: stamp) }
                purged = ids.count
                return .commit
            }
            _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        return PurgeResult(purged: purged, closedBefore: cutoff)
    }

    /// Retention for handoffs that never close: an unanswered referral must not keep a person's
    /// data for ever. An open handoff created before `createdBefore + notice` is announced to
    /// the agency system once (`handoff.retention_notice`, `due` the earliest removal); one
    /// created before `createdBefore` whose notice is at least `notice` old loses its personal
    /// data as a closed one does, and the system is told (`handoff.personal_data_removed`). The
    /// handoff itself stays open, its envelope, clocks and history intact.
    public func expireOpen(createdBefore cutoff: Date, notice: TimeInterval) throws -> OpenRetentionResult {
        let now = clock.now()
        let stamp = Timestamp.format(now)
        var result = OpenRetentionResult(noticed: 0, purged: 0, createdBefore: cutoff)
        try pool.writeWithoutTransaction { db in
            try db.inTransaction {
                let open = "purged_at IS NULL AND status <> 'declined' AND status <> 'completed' AND status <> 'cancelled' AND delivery <> 'refused'"
                let toNotice = try String.fetchAll(db, sql: "SELECT id FROM referral WHERE \(open) AND retention_notice_at IS NULL AND created_at < ?",
                                                   arguments: [Timestamp.format(cutoff + notice)])
                for id in toNotice {
                    try db.execute(sql: "UPDATE referral SET retention_notice_at = ? WHERE id = ?", arguments: [stamp, id])
                    let created = try String.fetchOne(db, sql: "SELECT created_at FROM referral WHERE id = ?", arguments: [id]).flatMap(Timestamp.parse) ?? now
                    let removal = max(created + (now.timeIntervalSince(cutoff)), now + notice)
                    try notify(db, type: "handoff.retention_notice", referralID: id, due: removal, stamp: stamp)
                }
                let toPurge = try String.fetchAll(db, sql: """
                    SELECT id FROM referral WHERE \(open) AND created_at < ? AND retention_notice_at <= ?
                    AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.referral_id = referral.id AND o.committed_at IS NULL AND o.refused_code IS NULL)
                    """, arguments: [Timestamp.format(cutoff), Timestamp.format(now - notice)])
                for id in toPurge {
                    try removePersonalData(db, id, stamp: stamp)
                    try notify(db, type: "handoff.personal_data_removed", referralID: id, stamp: stamp)
                }
                result.noticed = toNotice.count
                result.purged = toPurge.count
                return .commit
            }
            _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        return result
    }

    /// Empties a handoff's personal data, in the clear and sealed, and stamps `purged_at`.
    private func removePersonalData(_ db: Database, _ id: String, stamp: String) throws {
        try db.execute(sql: "UPDATE referral SET body = NULL, raw = X'', purged_at = ? WHERE id = ?", arguments: [stamp, id])
        try db.execute(sql: "UPDATE outbox SET payload = X'' WHERE kind = 'refer' AND referral_id = ?", arguments: [id])
        try db.execute(sql: "UPDATE refused_delivery SET payload = X'' WHERE message_id = ? AND kind = 'referral'", arguments: [id])
    }
}

/// What `expireOpen` did.
public struct OpenRetentionResult: Sendable, Codable, Equatable {
    /// Open handoffs whose agency system was told that their personal data will be removed.
    public var noticed: Int
    /// Open handoffs whose personal data was removed.
    public var purged: Int
    /// The cutoff: open handoffs created before it lose their personal data once noticed.
    public var createdBefore: Date

    enum CodingKeys: String, CodingKey {
        case noticed, purged
        case createdBefore = "created_before"
    }
}

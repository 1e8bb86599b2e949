import Foundation
import GRDB
import RujukCore

/// What the ledger made of a checkpoint the broker sent.
public enum CheckpointOutcome: Sendable, Equatable {
    /// Kept: the first for this record count and head.
    case stored
    /// Already kept (the broker sends its latest again at every READY).
    case known
    /// Kept, but a checkpoint already kept names the same record with another head: the
    /// broker's log was rewritten, or the broker signs two histories.
    case conflicting(records: Int64)
    /// Kept, but the log it describes is shorter than one already kept: the broker's log was
    /// cut back (or restored from an older copy).
    case shorter(than: Int64)
}

extension Ledger {
    /// Keeps a checkpoint whose signature the caller has verified. Every verified checkpoint is
    /// kept, contradictory ones too: two signed heads for one record are the proof.
    public func storeCheckpoint(_ checkpoint: Checkpoint) throws -> CheckpointOutcome {
        let stamp = Timestamp.format(clock.now())
        return try pool.write { db in
            let known = try Int.fetchOne(db, sql: "SELECT count(*) FROM checkpoint WHERE records = ? AND head = ?",
                                         arguments: [checkpoint.records, checkpoint.head]) ?? 0
            guard known == 0 else { return .known }
            let conflicting = try Int.fetchOne(db, sql: "SELECT count(*) FROM checkpoint WHERE records = ? AND head <> ?",
                                               arguments: [checkpoint.records, checkpoint.head]) ?? 0
            let longest = try Int64.fetchOne(db, sql: "SELECT max(records) FROM checkpoint") ?? 0
            try db.execute(sql: "INSERT INTO checkpoint (records, head, at, signature, received_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [checkpoint.records, checkpoint.head, Timestamp.format(checkpoint.at), checkpoint.signature, stamp])
            if conflicting > 0 { return .conflicting(records: checkpoint.records) }
            if checkpoint.records < longest { return .shorter(than: longest) }
            return .stored
        }
    }

    /// Every checkpoint kept, in the order received.
    public func checkpoints() throws -> [Checkpoint] {
        try pool.read(Self.checkpoints)
    }

    /// Every checkpoint kept in the ledger `db`, in the order received; also read by `rujuk audit
    /// checkpoints` on a read-only connection, beside a running adapter.
    public static func checkpoints(_ db: Database) throws -> [Checkpoint] {
        try Row.fetchAll(db, sql: "SELECT records, head, at, signature FROM checkpoint ORDER BY seq").map { row in
            let text: String = row[2]
            guard let at = Timestamp.parse(text) else {
                throw RujukError(.internal, "the ledger holds a checkpoint whose time cannot be read")
            }
            return Checkpoint(records: row[0], head: row[1], at: at, signature: row[3])
        }
    }
}

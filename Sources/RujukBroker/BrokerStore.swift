import Foundation
import GRDB
import Logging
import RujukCore
import RujukStorage

/// The broker's SQLite store: every message it has acknowledged, the handoffs they make up,
/// and each agency's mailbox.
///
/// Writes happen only on the router thread, in `commit(_:)`, one transaction per group of
/// messages; the HTTP API reads through the pool's reader connections concurrently.
public final class BrokerStore: @unchecked Sendable {
    public let pool: DatabasePool
    public let url: URL
    private let checkpointer: Checkpointer

    /// Opens (creating if needed) the store at `<directory>/broker.sqlite`.
    ///
    /// A file that is not a Rujuk store, or is corrupt, is refused with a clear error and left
    /// untouched: the broker never overwrites data it cannot read.
    public init(directory: URL, durability: Durability) throws {
        url = directory.appendingPathComponent("broker.sqlite")
        pool = try DurableDatabase.open(url, durability: durability, label: "rujuk.broker", what: "broker store")
        do {
            try Self.migrator.migrate(pool)
            checkpointer = try Checkpointer(url)
        } catch let error as DatabaseError {
            throw RujukError(.storageUnavailable, "cannot open the broker store \(url.path): \(error.message ?? "\(error.resultCode)") — the file was left as it is")
        }
        checkpointer.start()
    }

    deinit { checkpointer.stop() }

    /// The synchronous level of the writer connection: 2 is FULL, 1 NORMAL.
    public func synchronousLevel() throws -> Int {
        try pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// Migrations are registered once and never edited after they ship.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                -- A rowid table, not WITHOUT ROWID: a ~1 KiB payload does not fit in a
                -- WITHOUT ROWID cell and would spill into a mostly empty overflow page each.
                CREATE TABLE message (
                    id TEXT PRIMARY KEY NOT NULL,
                    kind TEXT NOT NULL CHECK (kind IN ('referral', 'event', 'escalation')),
                    referral_id TEXT NOT NULL,
                    author TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    stored_at TEXT NOT NULL
                );
                CREATE TABLE handoff (
                    id TEXT PRIMARY KEY NOT NULL REFERENCES message(id),
                    case_ref TEXT NOT NULL,
                    from_agency TEXT NOT NULL,
                    to_agency TEXT NOT NULL,
                    service TEXT NOT NULL,
                    priority TEXT NOT NULL,
                    province TEXT NOT NULL,
                    regency TEXT NOT NULL,
                    status TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    due_receive TEXT NOT NULL,
                    due_respond TEXT NOT NULL,
                    due_complete TEXT NOT NULL,
                    updated_at TEXT NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX handoff_from ON handoff(from_agency, status);
                CREATE INDEX handoff_to ON handoff(to_agency, status);
                CREATE TABLE handoff_event (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    referral_id TEXT NOT NULL REFERENCES handoff(id),
                    status TEXT NOT NULL,
                    by_agency TEXT NOT NULL,
                    reason TEXT,
                    outcome TEXT,
                    at TEXT NOT NULL,
                    recorded_at TEXT NOT NULL
                );
                CREATE INDEX handoff_event_referral ON handoff_event(referral_id, seq);
                CREATE TABLE delivery (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    agency TEXT NOT NULL,
                    message_id TEXT NOT NULL REFERENCES message(id),
                    receipted_at TEXT,
                    UNIQUE (agency, message_id)
                );
                CREATE INDEX delivery_pending ON delivery(agency, seq) WHERE receipted_at IS NULL;
                """)
        }
        migrator.registerMigration("v2-escalation") { db in
            try db.execute(sql: """
                CREATE TABLE escalation (
                    id TEXT PRIMARY KEY NOT NULL REFERENCES message(id),
                    referral_id TEXT NOT NULL REFERENCES handoff(id),
                    notice TEXT NOT NULL CHECK (notice IN ('breach', 'resolved')),
                    level INTEGER NOT NULL,
                    clock TEXT NOT NULL,
                    targets TEXT NOT NULL,
                    at TEXT NOT NULL,
                    recorded_at TEXT NOT NULL
                );
                CREATE INDEX escalation_referral ON escalation(referral_id);
                -- The level an open escalation has reached: 0 when none is open.
                ALTER TABLE handoff ADD COLUMN escalation_level INTEGER NOT NULL DEFAULT 0;
                """)
        }
        return migrator
    }
}

/// One message waiting in a mailbox, as the router holds it in memory.
struct MailboxEntry: Sendable {
    var seq: Int64
    var messageID: String
    var kind: DeliveryKind
    var payload: [UInt8]
    var attempt: Int = 0
}

/// What one group commit did for one incoming message.
enum CommitOutcome {
    /// Stored (or already stored, identically): acknowledge with COMMIT.
    case committed(id: String)
    /// Refused: answer with ERROR; nothing was written for it.
    case refused(RujukError, id: String?)
}

/// A unit of work for the group commit, in arrival order.
enum PendingWrite {
    case refer(Referral, raw: [UInt8], agency: String)
    case update(HandoffEvent, raw: [UInt8], agency: String)
    /// `kinds` holds, per id, the kind of the delivery when the router still has it in flight
    /// (nil when it does not know, e.g. a late receipt from an earlier session).
    case receipt(ids: [String], agency: String, kinds: [DeliveryKind?])
    case escalate(Escalation, raw: [UInt8], agency: String)
}

extension BrokerStore {
    /// Writes a group of messages in one transaction and reports each one's fate, plus the
    /// deliveries the transaction created (to hand to the mailboxes once it has committed).
    ///
    /// A message refused by validation writes nothing and does not disturb the others. If the
    /// transaction itself fails (disk full, I/O error), every message of the group is refused
    /// with `storage_unavailable` and nothing of it is acknowledged.
    func commit(_ writes: [PendingWrite], now: Date) -> (outcomes: [CommitOutcome], deliveries: [(agency: String, entry: MailboxEntry)]) {
        var outcomes: [CommitOutcome] = []
        var deliveries: [(agency: String, entry: MailboxEntry)] = []
        let stamp = Timestamp.format(now)
        do {
            try pool.write { db in
                outcomes.removeAll()
                deliveries.removeAll()
                var writer = GroupWriter(db: db, stamp: stamp, now: now)
                for write in writes {
                    do {
                        switch write {
                        case .refer(let referral, let raw, let agency):
                            try writer.refer(referral, raw: raw, agency: agency)
                            outcomes.append(.committed(id: referral.id))
                        case .update(let event, let raw, let agency):
                            try writer.update(event, raw: raw, agency: agency)
                            outcomes.append(.committed(id: event.id))
                        case .receipt(let ids, let agency, let kinds):
                            try writer.receipt(ids: ids, agency: agency, kinds: kinds)
                            outcomes.append(.committed(id: ""))
                        case .escalate(let escalation, let raw, let agency):
                            try writer.escalate(escalation, raw: raw, agency: agency)
                            outcomes.append(.committed(id: escalation.id))
                        }
                    } catch let error as RujukError {
                        let id: String? = switch write {
                        case .refer(let referral, _, _): referral.id
                        case .update(let event, _, _): event.id
                        case .escalate(let escalation, _, _): escalation.id
                        case .receipt: nil
                        }
                        outcomes.append(.refused(error, id: id))
                    }
                }
                deliveries = writer.deliveries
            }
        } catch {
            let failure = RujukError(.storageUnavailable, "the broker could not store the message; retry later")
            outcomes = writes.map { write in
                switch write {
                case .refer(let referral, _, _): .refused(failure, id: referral.id)
                case .update(let event, _, _): .refused(failure, id: event.id)
                case .escalate(let escalation, _, _): .refused(failure, id: escalation.id)
                case .receipt: .refused(failure, id: nil)
                }
            }
            deliveries = []
        }
        return (outcomes, deliveries)
    }

    /// Pending deliveries of one mailbox after `seq`, in order.
    func pending(agency: String, after seq: Int64, limit: Int) throws -> [MailboxEntry] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT d.seq, d.message_id, m.kind, m.payload FROM delivery d JOIN message m ON m.id = d.message_id
                WHERE d.agency = ? AND d.receipted_at IS NULL AND d.seq > ? ORDER BY d.seq LIMIT ?
                """, arguments: [agency, seq, limit]).map { row in
                MailboxEntry(
                    seq: row[0], messageID: row[1], kind: DeliveryKind(rawValue: row[2]) ?? .event,
                    payload: [UInt8](row[3] as Data))
            }
        }
    }
}

/// The statements of one group-commit transaction.
private struct GroupWriter {
    let db: Database
    let stamp: String
    let now: Date
    var deliveries: [(agency: String, entry: MailboxEntry)] = []

    /// Inserts a message unless its id is known; returns false for an identical duplicate.
    private func insertMessage(id: String, kind: DeliveryKind, referralID: String, author: String, payload: [UInt8]) throws -> Bool {
        try db.run("INSERT OR IGNORE INTO message (id, kind, referral_id, author, payload, stored_at) VALUES (?, ?, ?, ?, ?, ?)",
                   .text(id), .text(kind.rawValue), .text(referralID), .text(author), .blob(payload), .text(stamp))
        if db.changesCount == 1 { return true }
        let existing = try Data.fetchOne(db.cachedStatement(sql: "SELECT payload FROM message WHERE id = ?"), arguments: [id])
        guard existing == Data(payload) else {
            throw RujukError(.duplicateConflict, "message id \(id) is already stored with different content")
        }
        return false
    }

    private mutating func deliver(_ messageID: String, kind: DeliveryKind, payload: [UInt8], to agency: String) throws {
        try db.run("INSERT INTO delivery (agency, message_id) VALUES (?, ?)", .text(agency), .text(messageID))
        deliveries.append((agency, MailboxEntry(seq: db.lastInsertedRowID, messageID: messageID, kind: kind, payload: payload)))
    }

    private func recordEvent(_ event: HandoffEvent) throws {
        try db.run("INSERT INTO handoff_event (id, referral_id, status, by_agency, reason, outcome, at, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   .text(event.id), .text(event.referralId), .text(event.status.rawValue), .text(event.by), .optional(event.reason),
                   .optional(event.outcome), .text(Timestamp.format(event.at)), .text(stamp))
        try db.run("UPDATE handoff SET status = ?, updated_at = ? WHERE id = ?", .text(event.status.rawValue), .text(stamp), .text(event.referralId))
    }

    mutating func refer(_ referral: Referral, raw: [UInt8], agency: String) throws {
        guard try insertMessage(id: referral.id, kind: .referral, referralID: referral.id, author: agency, payload: raw) else { return }
        let created = Timestamp.format(referral.createdAt)
        try db.run("""
            INSERT INTO handoff (id, case_ref, from_agency, to_agency, service, priority, province, regency, status, created_at, due_receive, due_respond, due_complete, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'requested', ?, ?, ?, ?, ?)
            """,
            .text(referral.id), .text(referral.caseRef), .text(referral.from), .text(referral.to), .text(referral.service.rawValue),
            .text(referral.priority.rawValue), .text(referral.location.province), .text(referral.location.regency), .text(created),
            .text(Timestamp.format(referral.dueReceive)), .text(Timestamp.format(referral.dueRespond)), .text(Timestamp.format(referral.dueComplete)), .text(stamp))
        try db.run("INSERT INTO handoff_event (id, referral_id, status, by_agency, at, recorded_at) VALUES (?, ?, 'requested', ?, ?, ?)",
                   .text(referral.id), .text(referral.id), .text(referral.from), .text(created), .text(stamp))
        try deliver(referral.id, kind: .referral, payload: raw, to: referral.to)
    }

    mutating func update(_ event: HandoffEvent, raw: [UInt8], agency: String) throws {
        guard event.by == agency else {
            throw RujukError(.identityMismatch, "'by' is '\(event.by)' but the message came from '\(agency)'")
        }
        if try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM message WHERE id = ?"), arguments: [event.id]) == true {
            _ = try insertMessage(id: event.id, kind: .event, referralID: event.referralId, author: agency, payload: raw)
            return
        }
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT from_agency, to_agency, status FROM handoff WHERE id = ?"), arguments: [event.referralId]) else {
            throw RujukError(.notFound, "no handoff \(event.referralId)")
        }
        let sender: String = row[0], recipient: String = row[1]
        let role: HandoffRole
        if agency == sender { role = .sender } else if agency == recipient { role = .recipient } else {
            throw RujukError(.notParty, "'\(agency)' is not a party to handoff \(event.referralId)")
        }
        var machine = HandoffStateMachine(status: HandoffStatus(rawValue: row[2]) ?? .requested)
        let path = machine.path(to: event.status, by: role)
        for status in path { try machine.apply(status, by: role) }
        if path.count > 1 {
            // The recipient answered before its receipt arrived: record the implied receipt.
            try markReceived(referralID: event.referralId, sender: sender, recipient: recipient)
        }
        _ = try insertMessage(id: event.id, kind: .event, referralID: event.referralId, author: agency, payload: raw)
        try recordEvent(event)
        try deliver(event.id, kind: .event, payload: raw, to: role == .sender ? recipient : sender)
    }

    private mutating func markReceived(referralID: String, sender: String, recipient: String) throws {
        let received = HandoffEvent(referralId: referralID, by: recipient, status: .received, at: now)
        let payload = JSONCoding.encode(received)
        _ = try insertMessage(id: received.id, kind: .event, referralID: referralID, author: recipient, payload: payload)
        try recordEvent(received)
        try deliver(received.id, kind: .event, payload: payload, to: sender)
    }

    /// An escalation from a handoff's sender: stored, recorded on the handoff, and delivered to
    /// each target's mailbox. A repeat of one already stored is acknowledged and does nothing.
    mutating func escalate(_ escalation: Escalation, raw: [UInt8], agency: String) throws {
        guard escalation.from == agency else {
            throw RujukError(.identityMismatch, "'from' is '\(escalation.from)' but the message came from '\(agency)'")
        }
        if try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM message WHERE id = ?"), arguments: [escalation.id]) == true {
            _ = try insertMessage(id: escalation.id, kind: .escalation, referralID: escalation.referralId, author: agency, payload: raw)
            return
        }
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT from_agency, to_agency FROM handoff WHERE id = ?"), arguments: [escalation.referralId]) else {
            throw RujukError(.notFound, "no handoff \(escalation.referralId)")
        }
        guard (row[0] as String) == agency else {
            throw RujukError(.notParty, "only the sender of handoff \(escalation.referralId) escalates it")
        }
        guard (row[1] as String) == escalation.to else {
            throw RujukError(.schemaViolation, "'to' is not the recipient of handoff \(escalation.referralId)")
        }
        _ = try insertMessage(id: escalation.id, kind: .escalation, referralID: escalation.referralId, author: agency, payload: raw)
        try db.run("INSERT INTO escalation (id, referral_id, notice, level, clock, targets, at, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   .text(escalation.id), .text(escalation.referralId), .text(escalation.notice.rawValue), .int(Int64(escalation.level)),
                   .text(escalation.clock.rawValue), .text(escalation.targets.joined(separator: " ")), .text(Timestamp.format(escalation.at)), .text(stamp))
        try db.run("UPDATE handoff SET escalation_level = ?, updated_at = ? WHERE id = ?",
                   .int(escalation.notice == .breach ? Int64(escalation.level) : 0), .text(stamp), .text(escalation.referralId))
        for target in escalation.targets {
            try deliver(escalation.id, kind: .escalation, payload: raw, to: target)
        }
    }

    mutating func receipt(ids: [String], agency: String, kinds: [DeliveryKind?]) throws {
        for (index, id) in ids.enumerated() {
            try db.run("UPDATE delivery SET receipted_at = ? WHERE agency = ? AND message_id = ? AND receipted_at IS NULL", .text(stamp), .text(agency), .text(id))
            guard db.changesCount == 1 else { continue }
            // A receipted event needs nothing more; a receipted referral may move its handoff.
            let kind = index < kinds.count ? kinds[index] : nil
            if kind == .event { continue }
            let sql = kind == .referral
                ? "SELECT from_agency, to_agency, status FROM handoff WHERE id = ?"
                : "SELECT h.from_agency, h.to_agency, h.status FROM message m JOIN handoff h ON h.id = m.id WHERE m.id = ? AND m.kind = 'referral'"
            guard let row = try Row.fetchOne(db.cachedStatement(sql: sql), arguments: [id]) else { continue }
            if (row[2] as String) == HandoffStatus.requested.rawValue, (row[1] as String) == agency {
                try markReceived(referralID: id, sender: row[0], recipient: row[1])
            }
        }
    }
}

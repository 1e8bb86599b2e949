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
    /// The group commit's statements, prepared once on the writer.
    let statements = PreparedStatements()
    /// The audit chain's newest hash; only the router thread's commits move it.
    private(set) var auditHead: [UInt8]
    /// The audit chain's newest `seq` (its record count), moved with `auditHead`.
    private(set) var auditRecords: Int64

    /// Opens (creating if needed) the store at `<directory>/broker.sqlite`.
    ///
    /// A file that is not a Rujuk store, or is corrupt, is refused with a clear error and left
    /// untouched: the broker never overwrites data it cannot read.
    public init(directory: URL, durability: Durability) throws {
        url = directory.appendingPathComponent("broker.sqlite")
        (pool, checkpointer) = try DurableDatabase.open(url, durability: durability, label: "rujuk.broker", what: "broker store", pageSize: .small, migrator: Self.migrator)
        (auditRecords, auditHead) = try pool.read(AuditChain.newest)
    }

    /// Walks the audit chain (`rujuk audit verify`, `/health`'s head comes from `auditHead`).
    public func verifyAudit() throws -> AuditChain.Report {
        try pool.read(AuditChain.verify)
    }

    /// The audit chain's newest hash, hex.
    public var auditHeadHex: String { AuditChain.hex(auditHead) }

    /// Closes the store at a clean stop, once the router has stopped writing: the log is
    /// copied into the file and emptied (`DurableDatabase.close`). False when a reader kept it
    /// from emptying; nothing is lost then, the next open finishes it.
    @discardableResult
    public func close() throws -> Bool {
        try DurableDatabase.close(pool, checkpointer: checkpointer, statements: statements)
    }

    deinit { checkpointer.stop() }

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
        migrator.registerMigration("v3-feed") { db in
            // The monitor feed (Protocols/MONITOR.md): every transition and escalation, envelope
            // only, numbered by `seq` in commit order. Subscribers that miss some read them here.
            // Narrow, and indexed by `seq` alone: it is written twice per referral on the hot
            // path; the handoff's other fields come from `handoff` when it is read.
            try db.execute(sql: """
                CREATE TABLE feed (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    kind TEXT NOT NULL CHECK (kind IN ('transition', 'escalation')),
                    referral_id TEXT NOT NULL REFERENCES handoff(id),
                    message_id TEXT NOT NULL,
                    status TEXT NOT NULL,
                    by_agency TEXT NOT NULL,
                    overdue TEXT,
                    level INTEGER,
                    notice TEXT,
                    clock TEXT,
                    targets TEXT,
                    at TEXT NOT NULL
                );
                """)
        }
        migrator.registerMigration("v4-consent") { db in
            // The basis of each referral, from its envelope: 'given', or 'overridden' with the
            // ground (emergency, child_protection). Overrides are flagged on the feed and the
            // dashboard and counted per agency; the consent record itself is sealed.
            try db.execute(sql: """
                ALTER TABLE handoff ADD COLUMN consent TEXT NOT NULL DEFAULT 'given';
                ALTER TABLE handoff ADD COLUMN consent_ground TEXT;
                """)
        }
        migrator.registerMigration("v5-audit") { db in
            // The feed is the audit log: each row chained to the one before by SHA-256
            // (AuditChain.swift). Rows are never updated or deleted by the broker.
            try db.execute(sql: """
                ALTER TABLE feed ADD COLUMN prev_hash BLOB;
                ALTER TABLE feed ADD COLUMN hash BLOB;
                CREATE TRIGGER feed_append_only_update BEFORE UPDATE ON feed BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
                CREATE TRIGGER feed_append_only_delete BEFORE DELETE ON feed BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
                """)
        }
        migrator.registerMigration("v6-checks-without-lists") { db in
            // A CHECK on a list of three built a temporary B-tree on every message stored
            // (SchemaRewrite); the same constraint, written as comparisons.
            try SchemaRewrite.replaceInTable(db, "message", "CHECK (kind IN ('referral', 'event', 'escalation'))",
                                             with: "CHECK (kind = 'referral' OR kind = 'event' OR kind = 'escalation')")
        }
        migrator.registerMigration("v7-agency-indexes-without-status") { db in
            // With the status in them, every status change deleted and re-inserted an entry in
            // both agency indexes: four B-tree writes of the ~30 a referral costs here, each a
            // page of its own in a small commit. By agency alone, a status change leaves them
            // as they are; the status API's `?agency=…&status=…` then reads that agency's
            // handoffs and checks their status, a read the coordinators make now and then.
            // Building them reads the table once, at the first start after an upgrade: 2.9 s for
            // 1,000,000 handoffs on the project's 2-core machine (README, "Deploying for real").
            try db.execute(sql: """
                DROP INDEX handoff_from;
                DROP INDEX handoff_to;
                CREATE INDEX handoff_from ON handoff(from_agency);
                CREATE INDEX handoff_to ON handoff(to_agency);
                """)
        }
        migrator.registerMigration("v8-envelope-codes") { db in
            // RRP/2: the envelope carries codes, never words an agency typed (LegacyFreeText).
            try LegacyFreeText.clear(db)
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
    func commit(_ writes: [PendingWrite], now: Date) -> (outcomes: [CommitOutcome], deliveries: [(agency: String, entry: MailboxEntry)], feed: [FeedEvent]) {
        var outcomes: [CommitOutcome] = []
        var deliveries: [(agency: String, entry: MailboxEntry)] = []
        var feed: [FeedEvent] = []
        var head = auditHead
        var records = auditRecords
        let stamp = Timestamp.format(now)
        do {
            try pool.write { db in
                outcomes.removeAll()
                deliveries.removeAll()
                feed.removeAll()
                var writer = GroupWriter(db: db, statements: statements, stamp: stamp, now: now, auditHead: auditHead)
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
                feed = writer.feed
                head = writer.auditHead
                records = writer.nextFeedSeq.map { $0 - 1 } ?? auditRecords
            }
            auditHead = head
            auditRecords = records
        } catch {
            // The reason names the storage fault (e.g. "database or disk is full"), so the
            // sender's operator knows what the broker's operator must fix.
            let cause = (error as? DatabaseError)?.message ?? "\(error)"
            let failure = RujukError(.storageUnavailable, "the broker could not store the message (\(cause)); retry later")
            outcomes = writes.map { write in
                switch write {
                case .refer(let referral, _, _): .refused(failure, id: referral.id)
                case .update(let event, _, _): .refused(failure, id: event.id)
                case .escalate(let escalation, _, _): .refused(failure, id: escalation.id)
                case .receipt: .refused(failure, id: nil)
                }
            }
            deliveries = []
            feed = []
        }
        return (outcomes, deliveries, feed)
    }

    /// Feed events after `seq` under `topic` (`kind/…`, `province/…`, `agency/…`, or empty for
    /// all), oldest first, each found through an index on the topic's column and `seq`.
    public func feed(after seq: Int64, topic: String, limit: Int) async throws -> FeedPage {
        let parts = topic.split(separator: "/", maxSplits: 1).map(String.init)
        let condition: String
        var arguments: StatementArguments = []
        switch (parts.first, parts.count == 2 ? parts[1] : "") {
        case (nil, _), ("kind", ""):
            condition = "1"
        case ("kind", let kind):
            guard FeedEvent.Kind(rawValue: kind) != nil else { throw RujukError(.schemaViolation, "unknown kind '\(kind)'") }
            condition = "f.kind = ?"
            _ = arguments.append(contentsOf: [kind])
        case ("province", let province) where ReferralValidation.isProvinceCode(province):
            condition = "h.province = ?"
            _ = arguments.append(contentsOf: [province])
        case ("agency", let agency) where ReferralValidation.isAgencyID(agency):
            condition = "(h.from_agency = ?1 OR h.to_agency = ?1 OR (f.kind = 'escalation' AND (' ' || f.targets || ' ') LIKE '% ' || ?1 || ' %'))"
            _ = arguments.append(contentsOf: [agency])
        default:
            throw RujukError(.schemaViolation, "topic must be kind/…, province/<ISO 3166-2> or agency/<id>")
        }
        let bound = arguments
        return try await pool.read { db in
            // Walks the feed from `seq` by its primary key, joining each row's handoff.
            let sql = """
                SELECT f.*, h.from_agency, h.to_agency, h.service, h.priority, h.province, h.consent FROM feed f JOIN handoff h ON h.id = f.referral_id
                WHERE f.seq > \(seq) AND \(condition) ORDER BY f.seq LIMIT \(limit)
                """
            let events = try Row.fetchAll(db, sql: sql, arguments: bound).map(Self.feedEvent)
            let latest = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'feed'") ?? 0
            return FeedPage(events: events, latest: latest)
        }
    }

    static func feedEvent(_ row: Row) -> FeedEvent {
        let targets: String? = row["targets"]
        let overdue: String? = row["overdue"], notice: String? = row["notice"], clock: String? = row["clock"]
        return FeedEvent(
            seq: row["seq"], kind: FeedEvent.Kind(rawValue: row["kind"]) ?? .transition, referralId: row["referral_id"], messageId: row["message_id"],
            status: HandoffStatus(rawValue: row["status"]) ?? .requested, by: row["by_agency"], from: row["from_agency"], to: row["to_agency"],
            service: Service(rawValue: row["service"]) ?? .medicalCare, priority: Priority(rawValue: row["priority"]) ?? .routine,
            province: row["province"], overdue: overdue.flatMap(Breach.init(rawValue:)), level: row["level"],
            notice: notice.flatMap(Escalation.Notice.init(rawValue:)), clock: clock.flatMap(Breach.init(rawValue:)),
            targets: targets.map { $0.split(separator: " ").map(String.init) }, consentOverride: (row["consent"] as String?) == "overridden",
            at: Timestamp.parse(row["at"]) ?? .distantPast)
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
    let statements: PreparedStatements
    let stamp: String
    let now: Date
    var deliveries: [(agency: String, entry: MailboxEntry)] = []
    /// Feed events recorded in this transaction, to publish once it has committed.
    var feed: [FeedEvent] = []
    /// The audit chain's newest hash, as this transaction extends it.
    var auditHead: [UInt8]
    /// The next feed row's seq, once this transaction has read it: only this writer inserts
    /// feed rows, so it is read from `sqlite_sequence` once instead of before every row.
    var nextFeedSeq: Int64?

    /// What the feed and the checks need of a handoff.
    struct Envelope {
        var id: String
        var from: String
        var to: String
        var status: HandoffStatus
        var service: Service
        var priority: Priority
        var province: String
        var deadlines: Deadlines
        var consentOverride: Bool
    }

    // Written out, not built from one column list: the statements are found by their literal.
    private static let envelopeByID: StaticString = """
        SELECT h.id, h.from_agency, h.to_agency, h.status, h.service, h.priority, h.province, h.due_receive, h.due_respond, h.due_complete, h.consent
        FROM handoff h WHERE h.id = ?
        """
    private static let envelopeOfReferralMessage: StaticString = """
        SELECT h.id, h.from_agency, h.to_agency, h.status, h.service, h.priority, h.province, h.due_receive, h.due_respond, h.due_complete, h.consent
        FROM message m JOIN handoff h ON h.id = m.id WHERE m.id = ? AND m.kind = 'referral'
        """

    /// A handoff's envelope by `sql` (one of the two above), read through SQLite's C API: this
    /// runs for every receipted referral.
    private func envelope(_ sql: StaticString, _ id: String) throws -> Envelope? {
        try db.first(statements, sql, .text(id)) { row in
            func date(_ index: Int32) -> Date { Timestamp.parse(row.text(index)) ?? .distantPast }
            return Envelope(
                id: row.text(0), from: row.text(1), to: row.text(2), status: HandoffStatus(rawValue: row.text(3)) ?? .requested,
                service: Service(rawValue: row.text(4)) ?? .medicalCare, priority: Priority(rawValue: row.text(5)) ?? .routine, province: row.text(6),
                deadlines: Deadlines(receive: date(7), respond: date(8), complete: date(9)), consentOverride: row.text(10) == "overridden")
        }
    }

    private func envelope(_ id: String) throws -> Envelope? {
        try envelope(Self.envelopeByID, id)
    }

    /// Appends a transition or an escalation to the feed.
    private mutating func publish(_ kind: FeedEvent.Kind, _ handoff: Envelope, messageID: String, status: HandoffStatus, by: String, escalation: Escalation? = nil, at: Date) throws {
        let overdue = Breach.at(now, status: status, dueReceive: handoff.deadlines.receive, dueRespond: handoff.deadlines.respond, dueComplete: handoff.deadlines.complete)
        // The writer is serialized and AUTOINCREMENT hands out max(seq) + 1: the seq is known
        // before the insert, so the row goes in with its hash.
        let seq = try nextFeedSeq ?? ((db.first(statements, "SELECT seq FROM sqlite_sequence WHERE name = 'feed'") { $0.int(0) } ?? 0) + 1)
        let atText = Timestamp.format(at)
        let targets = escalation?.targets.joined(separator: " ")
        let content = AuditChain.content(
            seq: seq, kind: kind.rawValue, referralID: handoff.id, messageID: messageID, status: status.rawValue, by: by, overdue: overdue?.rawValue,
            level: escalation.map { Int64($0.level) }, notice: escalation?.notice.rawValue, clock: escalation?.clock.rawValue, targets: targets, at: atText,
            from: handoff.from, to: handoff.to, service: handoff.service.rawValue, priority: handoff.priority.rawValue, province: handoff.province,
            consent: handoff.consentOverride ? "overridden" : "given")
        let hash = AuditChain.link(auditHead, content)
        try db.run(statements, """
            INSERT INTO feed (seq, kind, referral_id, message_id, status, by_agency, overdue, level, notice, clock, targets, at, prev_hash, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            .int(seq), .text(kind.rawValue), .text(handoff.id), .text(messageID), .text(status.rawValue), .text(by), .optional(overdue?.rawValue),
            escalation.map { .int(Int64($0.level)) } ?? .null, .optional(escalation?.notice.rawValue), .optional(escalation?.clock.rawValue),
            .optional(targets), .text(atText), .blob(auditHead), .blob(hash))
        auditHead = hash
        nextFeedSeq = seq + 1
        feed.append(FeedEvent(
            seq: db.lastInsertedRowID, kind: kind, referralId: handoff.id, messageId: messageID, status: status, by: by, from: handoff.from,
            to: handoff.to, service: handoff.service, priority: handoff.priority, province: handoff.province, overdue: overdue,
            level: escalation?.level, notice: escalation?.notice, clock: escalation?.clock, targets: escalation?.targets,
            consentOverride: handoff.consentOverride, at: at))
    }

    /// Inserts a message unless its id is known; returns false for an identical duplicate.
    private func insertMessage(id: String, kind: DeliveryKind, referralID: String, author: String, payload: [UInt8]) throws -> Bool {
        try db.run(statements, "INSERT OR IGNORE INTO message (id, kind, referral_id, author, payload, stored_at) VALUES (?, ?, ?, ?, ?, ?)",
                   .text(id), .text(kind.rawValue), .text(referralID), .text(author), .blob(payload), .text(stamp))
        if db.changesCount == 1 { return true }
        let existing = try db.first(statements, "SELECT payload FROM message WHERE id = ?", .text(id)) { $0.blob(0) }
        guard existing == payload else {
            throw RujukError(.duplicateConflict, "message id \(id) is already stored with different content")
        }
        return false
    }

    private mutating func deliver(_ messageID: String, kind: DeliveryKind, payload: [UInt8], to agency: String) throws {
        try db.run(statements, "INSERT INTO delivery (agency, message_id) VALUES (?, ?)", .text(agency), .text(messageID))
        deliveries.append((agency, MailboxEntry(seq: db.lastInsertedRowID, messageID: messageID, kind: kind, payload: payload)))
    }

    private mutating func recordEvent(_ event: HandoffEvent, _ handoff: Envelope) throws {
        try publish(.transition, handoff, messageID: event.id, status: event.status, by: event.by, at: event.at)
        try db.run(statements, "INSERT INTO handoff_event (id, referral_id, status, by_agency, reason, outcome, at, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   .text(event.id), .text(event.referralId), .text(event.status.rawValue), .text(event.by), .optional(event.reason?.rawValue),
                   .optional(event.outcome?.rawValue), .text(Timestamp.format(event.at)), .text(stamp))
        try db.run(statements, "UPDATE handoff SET status = ?, updated_at = ? WHERE id = ?", .text(event.status.rawValue), .text(stamp), .text(event.referralId))
    }

    mutating func refer(_ referral: Referral, raw: [UInt8], agency: String) throws {
        guard try insertMessage(id: referral.id, kind: .referral, referralID: referral.id, author: agency, payload: raw) else { return }
        let created = Timestamp.format(referral.createdAt)
        try db.run(statements, """
            INSERT INTO handoff (id, case_ref, from_agency, to_agency, service, priority, province, regency, status, created_at, due_receive, due_respond, due_complete, updated_at,
                consent, consent_ground)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'requested', ?, ?, ?, ?, ?, ?, ?)
            """,
            .text(referral.id), .text(referral.caseRef), .text(referral.from), .text(referral.to), .text(referral.service.rawValue),
            .text(referral.priority.rawValue), .text(referral.location.province), .text(referral.location.regency ?? ""), .text(created),
            .text(Timestamp.format(referral.dueReceive)), .text(Timestamp.format(referral.dueRespond)), .text(Timestamp.format(referral.dueComplete)), .text(stamp),
            .text(referral.consent.status.rawValue), .optional(referral.consent.ground?.rawValue))
        try db.run(statements, "INSERT INTO handoff_event (id, referral_id, status, by_agency, at, recorded_at) VALUES (?, ?, 'requested', ?, ?, ?)",
                   .text(referral.id), .text(referral.id), .text(referral.from), .text(created), .text(stamp))
        let handoff = Envelope(
            id: referral.id, from: referral.from, to: referral.to, status: .requested, service: referral.service, priority: referral.priority,
            province: referral.location.province, deadlines: Deadlines(receive: referral.dueReceive, respond: referral.dueRespond, complete: referral.dueComplete),
            consentOverride: referral.consent.status == .overridden)
        try publish(.transition, handoff, messageID: referral.id, status: .requested, by: referral.from, at: referral.createdAt)
        try deliver(referral.id, kind: .referral, payload: raw, to: referral.to)
    }

    mutating func update(_ event: HandoffEvent, raw: [UInt8], agency: String) throws {
        guard event.by == agency else {
            throw RujukError(.identityMismatch, "'by' is '\(event.by)' but the message came from '\(agency)'")
        }
        if try db.first(statements, "SELECT 1 FROM message WHERE id = ?", .text(event.id), read: { _ in true }) == true {
            _ = try insertMessage(id: event.id, kind: .event, referralID: event.referralId, author: agency, payload: raw)
            return
        }
        guard let handoff = try envelope(event.referralId) else {
            throw RujukError(.notFound, "no handoff \(event.referralId)")
        }
        let sender = handoff.from, recipient = handoff.to
        let role: HandoffRole
        if agency == sender { role = .sender } else if agency == recipient { role = .recipient } else {
            throw RujukError(.notParty, "'\(agency)' is not a party to handoff \(event.referralId)")
        }
        var machine = HandoffStateMachine(status: handoff.status)
        let path = machine.path(to: event.status, by: role)
        for status in path { try machine.apply(status, by: role) }
        if path.count > 1 {
            // The recipient answered before its receipt arrived: record the implied receipt.
            try markReceived(handoff)
        }
        _ = try insertMessage(id: event.id, kind: .event, referralID: event.referralId, author: agency, payload: raw)
        try recordEvent(event, handoff)
        try deliver(event.id, kind: .event, payload: raw, to: role == .sender ? recipient : sender)
    }

    private mutating func markReceived(_ handoff: Envelope) throws {
        let received = HandoffEvent(referralId: handoff.id, by: handoff.to, status: .received, at: now)
        let payload = JSONCoding.encode(received)
        _ = try insertMessage(id: received.id, kind: .event, referralID: handoff.id, author: handoff.to, payload: payload)
        try recordEvent(received, handoff)
        try deliver(received.id, kind: .event, payload: payload, to: handoff.from)
    }

    /// An escalation from a handoff's sender: stored, recorded on the handoff, and delivered to
    /// each target's mailbox. A repeat of one already stored is acknowledged and does nothing.
    mutating func escalate(_ escalation: Escalation, raw: [UInt8], agency: String) throws {
        guard escalation.from == agency else {
            throw RujukError(.identityMismatch, "'from' is '\(escalation.from)' but the message came from '\(agency)'")
        }
        if try db.first(statements, "SELECT 1 FROM message WHERE id = ?", .text(escalation.id), read: { _ in true }) == true {
            _ = try insertMessage(id: escalation.id, kind: .escalation, referralID: escalation.referralId, author: agency, payload: raw)
            return
        }
        guard let handoff = try envelope(escalation.referralId) else {
            throw RujukError(.notFound, "no handoff \(escalation.referralId)")
        }
        guard handoff.from == agency else {
            throw RujukError(.notParty, "only the sender of handoff \(escalation.referralId) escalates it")
        }
        guard handoff.to == escalation.to else {
            throw RujukError(.schemaViolation, "'to' is not the recipient of handoff \(escalation.referralId)")
        }
        _ = try insertMessage(id: escalation.id, kind: .escalation, referralID: escalation.referralId, author: agency, payload: raw)
        try db.run(statements, "INSERT INTO escalation (id, referral_id, notice, level, clock, targets, at, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   .text(escalation.id), .text(escalation.referralId), .text(escalation.notice.rawValue), .int(Int64(escalation.level)),
                   .text(escalation.clock.rawValue), .text(escalation.targets.joined(separator: " ")), .text(Timestamp.format(escalation.at)), .text(stamp))
        try db.run(statements, "UPDATE handoff SET escalation_level = ?, updated_at = ? WHERE id = ?",
                   .int(escalation.notice == .breach ? Int64(escalation.level) : 0), .text(stamp), .text(escalation.referralId))
        try publish(.escalation, handoff, messageID: escalation.id, status: handoff.status, by: agency, escalation: escalation, at: escalation.at)
        for target in escalation.targets {
            try deliver(escalation.id, kind: .escalation, payload: raw, to: target)
        }
    }

    mutating func receipt(ids: [String], agency: String, kinds: [DeliveryKind?]) throws {
        for (index, id) in ids.enumerated() {
            try db.run(statements, "UPDATE delivery SET receipted_at = ? WHERE agency = ? AND message_id = ? AND receipted_at IS NULL", .text(stamp), .text(agency), .text(id))
            guard db.changesCount == 1 else { continue }
            // A receipted event needs nothing more; a receipted referral may move its handoff.
            let kind = index < kinds.count ? kinds[index] : nil
            if kind == .event { continue }
            let sql: StaticString = kind == .referral ? Self.envelopeByID : Self.envelopeOfReferralMessage
            guard let handoff = try envelope(sql, id) else { continue }
            if handoff.status == .requested, handoff.to == agency {
                try markReceived(handoff)
            }
        }
    }
}

extension BrokerStore {
    /// One row of `handoff_event` as the status API and the dashboard show it: codes only.
    static func event(_ row: Row) -> HandoffEvent {
        HandoffEvent(
            id: row["id"], referralId: row["referral_id"], by: row["by_agency"],
            status: HandoffStatus(rawValue: row["status"]) ?? .requested,
            reason: (row["reason"] as String?).flatMap(ClosingReason.init(rawValue:)),
            outcome: (row["outcome"] as String?).flatMap(Outcome.init(rawValue:)),
            at: Timestamp.parse(row["at"]) ?? .distantPast)
    }
}

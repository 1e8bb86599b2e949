import Foundation
import GRDB
import RujukCore
import RujukStorage

/// An agency's durable record: every referral it sent and received, every status change, every
/// acknowledgment sent and received with its time, the outbox of what still has to reach the
/// broker, and the notifications owed to the agency system.
public final class Ledger: @unchecked Sendable {
    public let pool: DatabasePool
    public let agency: String
    public let url: URL
    let clock: any RujukCore.Clock
    /// The clocks and the escalation ladder (sla.toml), and the network they name.
    let sla: SLAPolicy
    let registry: AgencyRegistry
    /// Opens what is delivered sealed for this agency, and holds the key (`AtRestKey`) the
    /// personal part of every referral is kept under here.
    let sealer: Sealer
    private let checkpointer: Checkpointer
    /// The statements run for every message, prepared once on the writer.
    public let statements = PreparedStatements()
    /// The agency system's writes (new referrals, status changes), committed in groups: a
    /// burst of requests shares one transaction and one fsync.
    public let requests: GroupCommit

    public init(directory: URL, agency: String, durability: Durability, clock: any RujukCore.Clock,
         sla: SLAPolicy = .standard, registry: AgencyRegistry = AgencyRegistry([]), sealer: Sealer) throws {
        url = directory.appendingPathComponent("ledger.sqlite")
        self.agency = agency
        self.clock = clock
        self.sla = sla
        self.registry = registry
        self.sealer = sealer
        (pool, checkpointer) = try DurableDatabase.open(url, durability: durability, label: "rujuk.ledger", what: "ledger", pageSize: .large,
                                                        migrator: Self.migrator(atRest: sealer.atRest))
        do {
            try Self.checkKey(pool, sealer.atRest, url)
        } catch {
            checkpointer.stop()
            throw error
        }
        // Whatever the writer frees is overwritten, always: a row that a change moves within its
        // page would otherwise leave its old copy, the sealed body in it, in the page's free
        // space, where `purge` does not look. (Debian builds SQLite with this on; others do not.)
        // The log is emptied too: it may hold pages a migration has since rewritten.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA secure_delete = ON")
            _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        requests = GroupCommit(pool: pool, label: "rujuk.ledger.requests")
    }

    /// Closes the ledger at a clean stop, once nothing writes to it (`DurableDatabase.close`).
    @discardableResult
    public func close() throws -> Bool {
        try DurableDatabase.close(pool, checkpointer: checkpointer, statements: statements)
    }

    deinit { checkpointer.stop() }

    /// The ledger's schema; `atRest` seals the bodies a ledger made before
    /// `v9-body-sealed-at-rest` kept in the clear.
    static func migrator(atRest: AtRestKey) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE referral (
                    id TEXT PRIMARY KEY NOT NULL,
                    direction TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
                    case_ref TEXT NOT NULL,
                    from_agency TEXT NOT NULL,
                    to_agency TEXT NOT NULL,
                    service TEXT NOT NULL,
                    priority TEXT NOT NULL,
                    province TEXT NOT NULL,
                    regency TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    status TEXT NOT NULL,
                    delivery TEXT NOT NULL CHECK (delivery IN ('queued', 'sent', 'refused', 'received')),
                    created_at TEXT NOT NULL,
                    due_receive TEXT NOT NULL,
                    due_respond TEXT NOT NULL,
                    due_complete TEXT NOT NULL,
                    updated_at TEXT NOT NULL,
                    raw BLOB NOT NULL
                );
                -- A rowid table: a WITHOUT ROWID row this size (the raw referral, ~1 KiB)
                -- would spill into an overflow page of its own.
                CREATE INDEX referral_direction ON referral(direction, status, due_respond);
                CREATE TABLE event (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    referral_id TEXT NOT NULL REFERENCES referral(id),
                    status TEXT NOT NULL,
                    by_agency TEXT NOT NULL,
                    reason TEXT,
                    outcome TEXT,
                    at TEXT NOT NULL,
                    recorded_at TEXT NOT NULL,
                    origin TEXT NOT NULL CHECK (origin IN ('local', 'remote'))
                );
                CREATE INDEX event_referral ON event(referral_id, recorded_at);
                CREATE TABLE outbox (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    message_id TEXT NOT NULL UNIQUE,
                    kind TEXT NOT NULL CHECK (kind IN ('refer', 'update', 'escalate')),
                    referral_id TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    created_at TEXT NOT NULL,
                    committed_at TEXT,
                    refused_code TEXT,
                    refused_reason TEXT
                );
                CREATE INDEX outbox_pending ON outbox(seq) WHERE committed_at IS NULL AND refused_code IS NULL;
                CREATE TABLE acknowledgment (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    message_id TEXT NOT NULL,
                    kind TEXT NOT NULL CHECK (kind IN ('commit_received', 'receipt_sent')),
                    at TEXT NOT NULL
                );
                CREATE INDEX acknowledgment_message ON acknowledgment(message_id);
                CREATE TABLE notification (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    type TEXT NOT NULL,
                    referral_id TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    created_at TEXT NOT NULL,
                    webhook_attempts INTEGER NOT NULL DEFAULT 0,
                    webhook_next_at TEXT,
                    webhook_done_at TEXT,
                    webhook_failed INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX notification_webhook ON notification(seq) WHERE webhook_done_at IS NULL AND webhook_failed = 0;
                """)
        }
        migrator.registerMigration("v2-refused-delivery") { db in
            // A delivery this ledger cannot take (not for this agency, unreadable, an event for
            // a referral it never had) is recorded here and receipted, so the broker stops
            // redelivering it and the agency system is told, instead of it going round forever.
            try db.execute(sql: """
                CREATE TABLE refused_delivery (
                    message_id TEXT PRIMARY KEY NOT NULL,
                    kind TEXT NOT NULL,
                    code TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    at TEXT NOT NULL
                );
                """)
        }
        migrator.registerMigration("v3-sla") { db in
            // The SLA clocks (LedgerSLA.swift). `next_check_at` is when the sweep must look at
            // a handoff next — a sender's escalation, a recipient's warning — found through its
            // partial index, never by a scan.
            try db.execute(sql: """
                ALTER TABLE referral ADD COLUMN next_check_at TEXT;
                ALTER TABLE referral ADD COLUMN esc_level INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE referral ADD COLUMN esc_clock TEXT;
                ALTER TABLE referral ADD COLUMN esc_since TEXT;
                ALTER TABLE referral ADD COLUMN esc_targets TEXT NOT NULL DEFAULT '';
                ALTER TABLE referral ADD COLUMN told TEXT NOT NULL DEFAULT '';
                CREATE INDEX referral_next_check ON referral(next_check_at) WHERE next_check_at IS NOT NULL;
                CREATE TABLE escalation (
                    id TEXT PRIMARY KEY NOT NULL,
                    referral_id TEXT NOT NULL,
                    direction TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
                    notice TEXT NOT NULL,
                    level INTEGER NOT NULL,
                    clock TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    at TEXT NOT NULL
                );
                CREATE INDEX escalation_referral ON escalation(referral_id);
                """)
        }
        migrator.registerMigration("v4-sealed") { db in
            // The personal part (subject, consent, notes), for this agency's own eyes: as
            // written for an outbound referral, as opened for an inbound one, sealed at rest
            // since `v9-body-sealed-at-rest` (LedgerAtRest.swift). `raw`
            // holds the referral as it travels, the personal part sealed. `purge` empties
            // both and stamps `purged_at`, keeping the envelope.
            try db.execute(sql: """
                ALTER TABLE referral ADD COLUMN body BLOB;
                ALTER TABLE referral ADD COLUMN consent TEXT NOT NULL DEFAULT 'given';
                ALTER TABLE referral ADD COLUMN purged_at TEXT;
                CREATE INDEX referral_closed ON referral(updated_at) WHERE purged_at IS NULL AND status IN ('declined', 'completed', 'cancelled');
                """)
        }
        migrator.registerMigration("v5-checks-without-lists") { db in
            // A CHECK or a partial index's WHERE on a list of three or more built a temporary
            // B-tree on every insert and update of the row (SchemaRewrite): the same constraints,
            // written as comparisons. `referral_closed` never served the purge, whose query also
            // takes refused deliveries; `referral_purgeable` holds exactly what the purge looks for.
            try SchemaRewrite.replaceInTable(db, "referral", "CHECK (delivery IN ('queued', 'sent', 'refused', 'received'))",
                                             with: "CHECK (delivery = 'queued' OR delivery = 'sent' OR delivery = 'refused' OR delivery = 'received')")
            try SchemaRewrite.replaceInTable(db, "outbox", "CHECK (kind IN ('refer', 'update', 'escalate'))",
                                             with: "CHECK (kind = 'refer' OR kind = 'update' OR kind = 'escalate')")
            try db.execute(sql: """
                DROP INDEX referral_closed;
                CREATE INDEX referral_purgeable ON referral(updated_at)
                    WHERE purged_at IS NULL AND (status = 'declined' OR status = 'completed' OR status = 'cancelled' OR delivery = 'refused');
                """)
        }
        migrator.registerMigration("v6-open-retention") { db in
            // When the agency system was told that an open handoff's personal data will be
            // removed for its age (`expireOpen`); it is removed no sooner than the notice period
            // after this.
            try db.execute(sql: "ALTER TABLE referral ADD COLUMN retention_notice_at TEXT")
        }
        migrator.registerMigration("v7-envelope-codes") { db in
            // RRP/2's envelope carries codes where RRP/1 carried words (Protocols/RRP.md section
            // 9.4): a referral's reason, a decline's or cancellation's reason, an outcome. The
            // words this ledger holds stay, as this agency's own record: a referral's move into
            // its body (`ReferralBody.reason`), a change's stay in `reason` and `outcome`, now
            // the change's note, beside its new code.
            let referralCodes = ReferralReason.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
            let closingCodes = ClosingReason.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
            let outcomeCodes = Outcome.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
            try db.execute(sql: """
                UPDATE referral SET body = CAST(json_set(CAST(body AS TEXT), '$.reason', reason) AS BLOB)
                    WHERE body IS NOT NULL AND reason NOT IN (\(referralCodes));
                UPDATE referral SET reason = 'other' WHERE reason NOT IN (\(referralCodes));
                ALTER TABLE event ADD COLUMN reason_code TEXT;
                ALTER TABLE event ADD COLUMN outcome_code TEXT;
                UPDATE event SET reason_code = CASE WHEN reason IN (\(closingCodes)) THEN reason ELSE 'other' END
                    WHERE status = 'declined' OR status = 'cancelled';
                UPDATE event SET outcome_code = CASE WHEN outcome IN (\(outcomeCodes)) THEN outcome ELSE 'other' END
                    WHERE status = 'completed';
                UPDATE event SET reason = NULL WHERE reason = reason_code;
                UPDATE event SET outcome = NULL WHERE outcome = outcome_code;
                """)
        }
        migrator.registerMigration("v8-checkpoints") { db in
            // The broker's signed checkpoints of its audit log (LedgerCheckpoints.swift): the
            // evidence `rujuk audit verify --checkpoints` holds a broker's log against, so
            // kept append-only, as the broker's own log is.
            try db.execute(sql: """
                CREATE TABLE checkpoint (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    records INTEGER NOT NULL CHECK (records >= 1),
                    head TEXT NOT NULL CHECK (length(head) = 64),
                    at TEXT NOT NULL,
                    signature TEXT NOT NULL,
                    received_at TEXT NOT NULL,
                    UNIQUE (records, head)
                );
                CREATE TRIGGER checkpoint_append_only_update BEFORE UPDATE ON checkpoint
                    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
                CREATE TRIGGER checkpoint_append_only_delete BEFORE DELETE ON checkpoint
                    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
                """)
        }
        migrator.registerMigration("v9-body-sealed-at-rest") { db in
            try sealBodiesAtRest(db, atRest)
        }
        migrator.registerMigration("v10-notes-sealed-at-rest") { db in
            try sealNotesAtRest(db, atRest)
        }
        return migrator
    }
}

/// One message the outbox still has to get committed at the broker.
struct OutboxEntry: Sendable {
    var seq: Int64
    var messageID: String
    var kind: String
    var payload: [UInt8]
}

/// A notification for the agency system (SSE `id:` is its seq).
public struct Notification: Codable, Sendable {
    public var seq: Int64
    /// `referral.received`, `referral.sent`, `referral.refused`, `handoff.updated`, `update.refused`,
    /// `delivery.refused` (a delivery this ledger could not take; `referral_id` is its message id).
    public var type: String
    public var referralId: String
    public var handoff: HandoffView?
    public var event: HandoffEvent?
    public var error: ProtocolError?
    /// For `handoff.escalated`, `handoff.escalation_resolved` and `escalation.received`.
    public var escalation: Escalation?
    /// For `handoff.escalated`: the sending agency's duty officer desk, from sla.toml.
    public var dutyOfficer: String?
    /// For `handoff.due_soon` and `handoff.overdue`: which clock, and its deadline; for
    /// `handoff.retention_notice`, `due` alone: when the handoff's personal data will be removed.
    public var clock: Breach?
    public var due: Date?
    public var at: Date

    public init(seq: Int64, type: String, referralId: String, handoff: HandoffView? = nil, event: HandoffEvent? = nil, error: ProtocolError? = nil,
                escalation: Escalation? = nil, dutyOfficer: String? = nil, clock: Breach? = nil, due: Date? = nil, at: Date) {
        self.seq = seq
        self.type = type
        self.referralId = referralId
        self.handoff = handoff
        self.event = event
        self.error = error
        self.escalation = escalation
        self.dutyOfficer = dutyOfficer
        self.clock = clock
        self.due = due
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case seq, type, handoff, event, error, escalation, clock, due, at
        case referralId = "referral_id"
        case dutyOfficer = "duty_officer"
    }
}

extension Notification: FastJSONEncodable {
    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("at", at)
        writer.field("clock", clock)
        if let due { writer.field("due", due) }
        writer.field("duty_officer", dutyOfficer)
        writer.field("error", error)
        writer.field("escalation", escalation)
        writer.field("event", event)
        writer.field("handoff", handoff)
        writer.field("referral_id", referralId)
        writer.field("seq", Int(seq))
        writer.field("type", type)
        writer.endObject()
    }
}

// MARK: - Writes

extension Ledger {
    /// The write that records a new outbound referral and queues it for the broker; run it
    /// through `requests`. Once committed, the referral survives a crash of the adapter.
    /// A retried request with the same id finds the referral already stored and changes nothing.
    func newReferral(_ referral: Referral, body: ReferralBody) -> @Sendable (Database) throws -> Void {
        let raw = JSONCoding.encode(referral)
        let plain = JSONCoding.encode(body)
        let sealedBody = sealer.atRest.seal(plain, row: referral.id)
        let stamp = Timestamp.format(clock.now())
        return { [self] db in
            if let stored = try Row.fetchOne(db, sql: "SELECT raw, body FROM referral WHERE id = ?", arguments: [referral.id]) {
                // A retried request: the same referral apart from the stamps the adapter added
                // and the seal (sealing twice never gives the same bytes).
                let storedRaw: Data = stored[0], storedBody: Data? = stored[1]
                guard !storedRaw.isEmpty, let storedBody else {
                    throw RujukError(.duplicateConflict, "referral \(referral.id) already exists, and its personal data has been purged")
                }
                let existing = try JSONCoding.decode(Referral.self, from: [UInt8](storedRaw), what: "ledger")
                var retried = referral
                retried.createdAt = existing.createdAt
                retried.dueReceive = existing.dueReceive
                retried.dueRespond = existing.dueRespond
                retried.dueComplete = existing.dueComplete
                retried.sealed = existing.sealed
                guard retried == existing, try sealer.atRest.open([UInt8](storedBody), row: referral.id) == plain else {
                    throw RujukError(.duplicateConflict, "referral \(referral.id) already exists with different content")
                }
                return
            }
            try insertReferral(db, referral, raw: raw, body: sealedBody, direction: "outbound", status: .requested, delivery: "queued", stamp: stamp)
            try db.cachedStatement(sql: "INSERT INTO event (id, referral_id, status, by_agency, at, recorded_at, origin) VALUES (?, ?, 'requested', ?, ?, ?, 'local')").execute(
                           arguments: [referral.id, referral.id, agency, Timestamp.format(referral.createdAt), stamp])
            try db.cachedStatement(sql: "INSERT INTO outbox (message_id, kind, referral_id, payload, created_at) VALUES (?, 'refer', ?, ?, ?)").execute(
                           arguments: [referral.id, referral.id, Data(raw), stamp])
        }
    }

    // Written out twice: the statements are found by their literal (PreparedStatements).
    private static let insertReferralSQL: StaticString = """
        INSERT INTO referral (id, direction, case_ref, from_agency, to_agency, service, priority, province, regency, reason, status, delivery,
            created_at, due_receive, due_respond, due_complete, updated_at, raw, next_check_at, body, consent)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """
    private static let insertReferralOrIgnore: StaticString = """
        INSERT OR IGNORE INTO referral (id, direction, case_ref, from_agency, to_agency, service, priority, province, regency, reason, status, delivery,
            created_at, due_receive, due_respond, due_complete, updated_at, raw, next_check_at, body, consent)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """

    /// Inserts a referral row; with `ignoringDuplicate`, an id already there is left alone and
    /// the answer is false.
    @discardableResult
    private func insertReferral(_ db: Database, _ referral: Referral, raw: [UInt8], body: [UInt8], direction: String, status: HandoffStatus, delivery: String, stamp: String, ignoringDuplicate: Bool = false) throws -> Bool {
        let deadlines = Deadlines(receive: referral.dueReceive, respond: referral.dueRespond, complete: referral.dueComplete)
        let nextCheck = direction == "outbound"
            ? SLAClock.senderNextCheck(status: status, deadlines: deadlines, state: .none, level2After: sla.escalation.level2After)
            : SLAClock.recipientNextCheck(status: status, deadlines: deadlines, told: [], lead: sla.escalation.warnBefore[referral.priority] ?? 0)
        try db.run(statements, ignoringDuplicate ? Self.insertReferralOrIgnore : Self.insertReferralSQL,
            .text(referral.id), .text(direction), .text(referral.caseRef), .text(referral.from), .text(referral.to), .text(referral.service.rawValue),
            .text(referral.priority.rawValue), .text(referral.location.province), .text(referral.location.regency ?? ""), .text(referral.reason.rawValue),
            .text(status.rawValue), .text(delivery), .text(Timestamp.format(referral.createdAt)), .text(Timestamp.format(referral.dueReceive)),
            .text(Timestamp.format(referral.dueRespond)), .text(Timestamp.format(referral.dueComplete)), .text(stamp), .blob(raw),
            .optional(nextCheck.map(Timestamp.format)), .blob(body), .text(referral.consent.status.rawValue))
        return db.changesCount == 1
    }

    /// The write that applies a status change made by this agency (through the API) and queues
    /// it for the broker; run it through `requests`. The change is validated here, its
    /// transition against the stored status when it runs.
    ///
    /// The codes travel as they are; the words of `note`, if any, are sealed for the other agency
    /// of the handoff, and kept in the clear in this ledger as this agency's own record.
    func localChange(referralID: String, status: HandoffStatus, reason: ClosingReason?, outcome: Outcome?, note: UpdateNote?) throws -> @Sendable (Database) throws -> Void {
        let now = clock.now()
        let stamp = Timestamp.format(now)
        let words = note.flatMap { $0.isEmpty ? nil : $0 }
        var event = HandoffEvent(referralId: referralID, by: agency, status: status, reason: reason, outcome: outcome, at: now)
        try ReferralValidation.validate(event)
        if let words { try ReferralValidation.validate(words) }
        return { [self, event] db in
            var event = event
            guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT direction, status, from_agency, to_agency FROM referral WHERE id = ?"), arguments: [referralID]) else {
                throw RujukError(.notFound, "no referral \(referralID)")
            }
            let role: HandoffRole = (row[0] as String) == "outbound" ? .sender : .recipient
            var machine = HandoffStateMachine(status: HandoffStatus(rawValue: row[1]) ?? .requested)
            try machine.apply(status, by: role)
            if let words {
                event.sealed = try sealer.seal(words, for: event, to: role == .sender ? row[3] : row[2])
            }
            try db.cachedStatement(sql: "INSERT INTO outbox (message_id, kind, referral_id, payload, created_at) VALUES (?, 'update', ?, ?, ?)").execute(
                           arguments: [event.id, referralID, Data(JSONCoding.encode(event)), stamp])
            event.note = words
            try recordEvent(db, event, origin: "local", stamp: stamp)
        }
    }

    private func recordEvent(_ db: Database, _ event: HandoffEvent, origin: String, stamp: String, updateStatus: Bool = true) throws {
        try insertEvent(db, event, origin: origin, stamp: stamp)
        guard updateStatus else { return }
        // A status change can resolve an escalation, make a clock run out or end the clocks:
        // the next check is set as the sweep would set it, at once when there is something to do.
        let next = try nextCheck(db, afterChangeOf: event.referralId, to: event.status, now: Timestamp.parse(stamp) ?? clock.now())
        try setStatus(db, event, stamp: stamp, nextCheck: next)
    }

    private func insertEvent(_ db: Database, _ event: HandoffEvent, origin: String, stamp: String) throws {
        try db.run(statements, """
            INSERT INTO event (id, referral_id, status, by_agency, reason_code, outcome_code, note, at, recorded_at, origin)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
                   .text(event.id), .text(event.referralId), .text(event.status.rawValue), .text(event.by), .optional(event.reason?.rawValue),
                   .optional(event.outcome?.rawValue), event.note.map { .blob(sealer.atRest.seal(JSONCoding.encode($0), row: event.id)) } ?? .null,
                   .text(Timestamp.format(event.at)), .text(stamp), .text(origin))
    }

    private func setStatus(_ db: Database, _ event: HandoffEvent, stamp: String, nextCheck: Date?) throws {
        try db.run(statements, "UPDATE referral SET status = ?, updated_at = ?, next_check_at = ? WHERE id = ?",
                   .text(event.status.rawValue), .text(stamp), .optional(nextCheck.map(Timestamp.format)), .text(event.referralId))
    }

    func notify(_ db: Database, type: String, referralID: String, view: HandoffView? = nil, event: HandoffEvent? = nil, error: ProtocolError? = nil,
                escalation: Escalation? = nil, dutyOfficer: String? = nil, clock: Breach? = nil, due: Date? = nil, stamp: String, lookUp: Bool = true) throws {
        // The seq is known before the insert: the writer is serialized, and AUTOINCREMENT
        // hands out max(seq) + 1.
        let seq = (try db.first(statements, "SELECT seq FROM sqlite_sequence WHERE name = 'notification'") { $0.int(0) } ?? 0) + 1
        let handoff = try view ?? (lookUp ? self.view(db, referralID, history: false, body: false) : nil)
        // The words of a change stay in the ledger, sealed at rest: the agency system reads them
        // from the referral's view, not from a notification stored in the clear.
        let notification = Notification(seq: seq, type: type, referralId: referralID, handoff: handoff, event: event?.wire, error: error,
                                        escalation: escalation, dutyOfficer: dutyOfficer, clock: clock, due: due, at: Timestamp.parse(stamp) ?? self.clock.now())
        try db.run(statements, "INSERT INTO notification (seq, type, referral_id, payload, created_at) VALUES (?, ?, ?, ?, ?)",
                   .int(seq), .text(type), .text(referralID), .blob(JSONCoding.encode(notification)), .text(stamp))
    }

    /// Stores a batch of DELIVERed messages in one transaction. Returns the ids to RECEIPT —
    /// all of them, including those already stored (a redelivery is receipted again but
    /// recorded once) — and whether anything new was stored.
    public func storeDeliveries(_ deliveries: [(DeliveryHeader, [UInt8])]) throws -> (receipts: [String], refused: [(String, RujukError)], new: Int) {
        let stamp = Timestamp.format(clock.now())
        var receipts: [String] = []
        var refused: [(String, RujukError)] = []
        var new = 0
        // Referrals are read, checked and opened before the transaction, on every core: decoding,
        // checking and opening (an X25519 for each new sealing session, the AEAD for every
        // referral) are a delivery's costliest steps outside SQLite, and the writer is one thread.
        let opened = openReferrals(deliveries)
        try pool.write { db in
            receipts.removeAll(); refused.removeAll(); new = 0
            for (index, (header, payload)) in deliveries.enumerated() {
                do {
                    switch header.kind {
                    case .referral:
                        let (referral, body) = try opened[index].get()
                        if try insertReferral(db, referral, raw: payload, body: body, direction: "inbound", status: .received, delivery: "received", stamp: stamp, ignoringDuplicate: true) {
                            try db.run(statements, "INSERT INTO event (id, referral_id, status, by_agency, at, recorded_at, origin) VALUES (?, ?, 'requested', ?, ?, ?, 'remote')",
                                       .text(referral.id), .text(referral.id), .text(referral.from), .text(Timestamp.format(referral.createdAt)), .text(stamp))
                            let now = clock.now()
                            let received = HandoffEvent(referralId: referral.id, by: agency, status: .received, at: now)
                            // The row went in as `received` already: only the history entry is new.
                            try recordEvent(db, received, origin: "local", stamp: stamp, updateStatus: false)
                            let view = HandoffView(
                                id: referral.id, caseRef: referral.caseRef, from: referral.from, to: referral.to, service: referral.service,
                                priority: referral.priority, location: referral.location, reason: referral.reason, status: .received,
                                createdAt: referral.createdAt, dueReceive: referral.dueReceive, dueRespond: referral.dueRespond,
                                dueComplete: referral.dueComplete, updatedAt: now,
                                overdue: Breach.at(now, status: .received, dueReceive: referral.dueReceive, dueRespond: referral.dueRespond, dueComplete: referral.dueComplete),
                                direction: "inbound", delivery: "received")
                            try notify(db, type: "referral.received", referralID: referral.id, view: view, stamp: stamp)
                            new += 1
                        }
                    case .escalation:
                        let escalation = try JSONCoding.decode(Escalation.self, from: payload, what: "DELIVER")
                        try ReferralValidation.validate(escalation)
                        guard escalation.targets.contains(agency) else {
                            throw RujukError(.notParty, "escalation \(escalation.id) is not addressed to '\(agency)'")
                        }
                        if try storeReceivedEscalation(db, escalation, payload: payload, stamp: stamp) { new += 1 }
                    case .event:
                        var event = try JSONCoding.decode(HandoffEvent.self, from: payload, what: "DELIVER")
                        if try db.first(statements, "SELECT 1 FROM event WHERE id = ?", .text(event.id), read: { _ in true }) != true {
                            try ReferralValidation.validate(event)
                            event.note = try sealer.open(event)
                            try applyRemote(db, event, stamp: stamp)
                            new += 1
                        }
                    }
                } catch let error as RujukError {
                    // Kept, with why, and receipted below: redelivering it would change nothing.
                    try db.cachedStatement(sql: "INSERT OR IGNORE INTO refused_delivery (message_id, kind, code, reason, payload, at) VALUES (?, ?, ?, ?, ?, ?)")
                        .execute(arguments: [header.id, header.kind.rawValue, error.code.rawValue, error.reason, Data(payload), stamp])
                    if db.changesCount == 1 {
                        try notify(db, type: "delivery.refused", referralID: header.id, error: ProtocolError(error, id: header.id), stamp: stamp, lookUp: false)
                    }
                    refused.append((header.id, error))
                }
                try db.run(statements, "INSERT INTO acknowledgment (message_id, kind, at) VALUES (?, 'receipt_sent', ?)", .text(header.id), .text(stamp))
                receipts.append(header.id)
            }
        }
        return (receipts, refused, new)
    }

    /// Each delivered referral decoded, checked, opened and checked again, in parallel; the
    /// body as it will be stored, sealed at rest. Other kinds get a placeholder.
    private func openReferrals(_ deliveries: [(DeliveryHeader, [UInt8])]) -> [Result<(Referral, [UInt8]), RujukError>] {
        guard !deliveries.isEmpty else { return [] }
        let results = UnsafeMutableBufferPointer<Result<(Referral, [UInt8]), RujukError>>.allocate(capacity: deliveries.count)
        defer { results.deallocate() }
        let sealer = self.sealer, agency = self.agency
        @Sendable func open(_ index: Int) -> Result<(Referral, [UInt8]), RujukError> {
            let (header, payload) = deliveries[index]
            guard header.kind == .referral else { return .failure(RujukError(.internal, "not a referral")) }
            do {
                let referral = try JSONCoding.decode(Referral.self, from: payload, what: "DELIVER")
                try ReferralValidation.validate(referral)
                guard referral.to == agency else { throw RujukError(.notParty, "referral \(referral.id) is for '\(referral.to)', not '\(agency)'") }
                let body = try sealer.open(referral)
                try ReferralValidation.validate(body)
                try ReferralValidation.checkAgreement(body, with: referral.consent)
                return .success((referral, sealer.atRest.seal(JSONCoding.encode(body), row: referral.id)))
            } catch let error as RujukError {
                return .failure(error)
            } catch {
                return .failure(RujukError(.internal, "\(error)"))
            }
        }
        // Each iteration writes its own slot only.
        struct Slots: @unchecked Sendable { let base: UnsafeMutablePointer<Result<(Referral, [UInt8]), RujukError>> }
        let slots = Slots(base: results.baseAddress!)
        // In parallel only for a batch worth waking a second thread for (a backlog, a burst);
        // one or two deliveries at a time are opened here, without the hand-off's latency.
        if deliveries.count >= 16 {
            DispatchQueue.concurrentPerform(iterations: deliveries.count) { (slots.base + $0).initialize(to: open($0)) }
        } else {
            for index in deliveries.indices { (slots.base + index).initialize(to: open(index)) }
        }
        let array = Array(results)
        _ = results.baseAddress.map { $0.deinitialize(count: deliveries.count) }
        return array
    }

    /// Applies an event another agency made (delivered by the broker) and tells the agency
    /// system. The handoff is read once, for the transition, the SLA clocks' next check and the
    /// notification's view: a sender's adapter does this for every referral it sent, and three
    /// readings of the row (through GRDB's `Row`, which copies every column and builds a
    /// dictionary of their names) were the largest part of its work in a drain.
    private func applyRemote(_ db: Database, _ event: HandoffEvent, stamp: String) throws {
        let now = Timestamp.parse(stamp) ?? clock.now()
        guard let (stored, clocks) = try db.first(statements, Self.remoteEventHandoff, .text(event.referralId), read: { row in
            (Self.view(row, now: now), RowClocks(row, from: ViewColumn.count))
        }) else {
            throw RujukError(.notFound, "event \(event.id) is for unknown referral \(event.referralId)")
        }
        let role: HandoffRole = event.by == stored.from ? .sender : .recipient
        var machine = HandoffStateMachine(status: stored.status)
        for status in machine.path(to: event.status, by: role) where status != event.status {
            try? machine.apply(status, by: role)
        }
        var handoff = stored
        try insertEvent(db, event, origin: "remote", stamp: stamp)
        if (try? machine.apply(event.status, by: role)) != nil {
            let next = nextCheck(afterChangeTo: event.status, direction: stored.direction ?? "", priority: stored.priority,
                                 deadlines: Deadlines(receive: stored.dueReceive, respond: stored.dueRespond, complete: stored.dueComplete),
                                 state: clocks.state, told: clocks.told, now: now)
            try setStatus(db, event, stamp: stamp, nextCheck: next)
            // The row as the UPDATE left it.
            handoff.status = event.status
            handoff.updatedAt = now
            handoff.overdue = Breach.at(now, status: event.status, dueReceive: stored.dueReceive, dueRespond: stored.dueRespond, dueComplete: stored.dueComplete)
        }
        // Otherwise recorded for the history only: it cannot move the status (the broker's order
        // decides; this copy will follow the events that come after it).
        try notify(db, type: "handoff.updated", referralID: event.referralId, view: handoff, event: event, stamp: stamp)
    }

    /// The handoff an event from another agency applies to: the view's columns (no body), then
    /// the clocks' (`RowClocks`). Written out, as a literal the prepared statements are found by;
    /// `StorageTests` checks that it begins with `viewColumnsWithoutBody`.
    static let remoteEventHandoff: StaticString = """
        SELECT id, case_ref, from_agency, to_agency, service, priority, province, regency, reason, status, created_at, due_receive, due_respond,
        due_complete, updated_at, direction, delivery, NULL, esc_level, esc_clock, esc_since, told FROM referral WHERE id = ?
        """

    /// Records the broker's COMMIT for outbox messages.
    func markCommitted(_ ids: [String]) throws {
        let stamp = Timestamp.format(clock.now())
        try pool.write { db in
            for id in ids {
                try db.run(statements, "UPDATE outbox SET committed_at = ? WHERE message_id = ? AND committed_at IS NULL", .text(stamp), .text(id))
                guard db.changesCount == 1 else { continue }
                try db.run(statements, "INSERT INTO acknowledgment (message_id, kind, at) VALUES (?, 'commit_received', ?)", .text(id), .text(stamp))
                try db.run(statements, "UPDATE referral SET delivery = 'sent', updated_at = ? WHERE id = ? AND delivery = 'queued'", .text(stamp), .text(id))
                if db.changesCount == 1 { try notify(db, type: "referral.sent", referralID: id, stamp: stamp) }
            }
        }
    }

    /// Records the broker's refusal of an outbox message; it will not be sent again.
    func markRefused(_ id: String, _ error: ProtocolError) throws {
        let stamp = Timestamp.format(clock.now())
        try pool.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT referral_id, kind FROM outbox WHERE message_id = ? AND committed_at IS NULL AND refused_code IS NULL", arguments: [id]) else { return }
            let referralID: String = row[0], kind: String = row[1]
            try db.cachedStatement(sql: "UPDATE outbox SET refused_code = ?, refused_reason = ? WHERE message_id = ?").execute( arguments: [error.code.rawValue, error.reason, id])
            if kind == "refer" {
                try db.cachedStatement(sql: "UPDATE referral SET delivery = 'refused', updated_at = ? WHERE id = ?").execute( arguments: [stamp, id])
            }
            let type = switch kind { case "refer": "referral.refused"; case "escalate": "escalation.refused"; default: "update.refused" }
            try notify(db, type: type, referralID: referralID, error: error, stamp: stamp)
        }
    }

    /// Outbox messages not yet committed, after `seq`, in order.
    func pendingOutbox(after seq: Int64, limit: Int) throws -> [OutboxEntry] {
        try pool.read { db in
            try Row.fetchAll(db.cachedStatement(sql: "SELECT seq, message_id, kind, payload FROM outbox WHERE committed_at IS NULL AND refused_code IS NULL AND seq > ? ORDER BY seq LIMIT ?"),
                             arguments: [seq, limit]).map { OutboxEntry(seq: $0[0], messageID: $0[1], kind: $0[2], payload: [UInt8]($0[3] as Data)) }
        }
    }
}

// MARK: - Reads

extension Ledger {
    public func view(_ id: String, history: Bool = true, body: Bool = true) throws -> HandoffView? {
        try pool.read { db in try view(db, id, history: history, body: body) }
    }

    func view(_ db: Database, _ id: String, history: Bool, body: Bool) throws -> HandoffView? {
        let now = clock.now()
        let found = body
            ? try Row.fetchOne(db.cachedStatement(sql: Self.viewByIDWithBody), arguments: [id]).map { row in
                var view = Self.view(row, now: now)
                // Opened here only: every other read of a handoff leaves its personal part sealed.
                view.body = try (row[ViewColumn.body.rawValue] as Data?).map { try openBody([UInt8]($0), referral: id) }
                return view
            }
            // The one a notification reads, inside the write that makes it.
            : try db.first(statements, Self.viewByID, .text(id)) { Self.view($0, now: now) }
        guard var view = found else { return nil }
        if history {
            view.history = try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM event WHERE referral_id = ? ORDER BY seq"), arguments: [id]).map(event)
        }
        return view
    }

    /// One row of `event`, its words opened (`openNote`).
    func event(_ row: Row) throws -> HandoffEvent {
        let id: String = row["id"]
        return HandoffEvent(id: id, referralId: row["referral_id"], by: row["by_agency"], status: HandoffStatus(rawValue: row["status"]) ?? .requested,
                            reason: (row["reason_code"] as String?).flatMap(ClosingReason.init(rawValue:)),
                            outcome: (row["outcome_code"] as String?).flatMap(Outcome.init(rawValue:)),
                            note: try (row["note"] as Data?).map { try openNote([UInt8]($0), event: id) }, at: Timestamp.parse(row["at"]) ?? .distantPast)
    }

    /// The columns `view(_:now:)` reads, each at its position: every query it decodes selects
    /// `viewColumnsWithBody` or `viewColumnsWithoutBody` first. By position, not by name: GRDB
    /// finds a column by name by lowercasing every column's name, which was the largest cost of
    /// an adapter storing the events of a drain (each one's notification reads its handoff, and
    /// so does the sweep).
    enum ViewColumn: Int, CaseIterable {
        case id, caseRef, from, to, service, priority, province, regency, reason, status, createdAt, dueReceive, dueRespond,
             dueComplete, updatedAt, direction, delivery, body

        /// Where the columns a query selects after these begin.
        static var count: Int { allCases.count }
    }
    private static let viewColumns = """
        id, case_ref, from_agency, to_agency, service, priority, province, regency, reason, status, created_at, due_receive, due_respond,
        due_complete, updated_at, direction, delivery
        """
    /// `ViewColumn`'s columns, the body with them or NULL in its place.
    static let viewColumnsWithBody = viewColumns + ", body"
    static let viewColumnsWithoutBody = viewColumns + ", NULL"
    // Built once: the statement cache is keyed by the SQL text, hashed on every use.
    private static let viewByIDWithBody = "SELECT \(viewColumnsWithBody) FROM referral WHERE id = ?"
    /// Written out, as a literal the prepared statements are found by; `StorageTests` checks that
    /// it selects `viewColumnsWithoutBody`.
    static let viewByID: StaticString = """
        SELECT id, case_ref, from_agency, to_agency, service, priority, province, regency, reason, status, created_at, due_receive, due_respond,
        due_complete, updated_at, direction, delivery, NULL FROM referral WHERE id = ?
        """

    /// A handoff's view, without its personal part, from a row that begins with
    /// `viewColumnsWithBody` or `viewColumnsWithoutBody`.
    static func view<R: ViewRow>(_ row: R, now: Date) -> HandoffView {
        func text(_ column: ViewColumn) -> String { row.text(column.rawValue) }
        func date(_ column: ViewColumn) -> Date { Timestamp.parse(text(column)) ?? .distantPast }
        let status = HandoffStatus(rawValue: text(.status)) ?? .requested
        let dueReceive = date(.dueReceive), dueRespond = date(.dueRespond), dueComplete = date(.dueComplete)
        return HandoffView(
            id: text(.id), caseRef: text(.caseRef), from: text(.from), to: text(.to),
            service: Service(rawValue: text(.service)) ?? .medicalCare, priority: Priority(rawValue: text(.priority)) ?? .routine,
            location: Location(province: text(.province), regency: text(.regency).isEmpty ? nil : text(.regency)),
            reason: ReferralReason(rawValue: text(.reason)), status: status,
            createdAt: date(.createdAt), dueReceive: dueReceive, dueRespond: dueRespond, dueComplete: dueComplete,
            updatedAt: date(.updatedAt),
            overdue: Breach.at(now, status: status, dueReceive: dueReceive, dueRespond: dueRespond, dueComplete: dueComplete),
            direction: text(.direction), delivery: text(.delivery)
        )
    }

    /// Inbound or outbound referrals, filtered; inbound sorted by the next due time.
    /// One page of the inbox (open ones first, soonest answer due first) or the outbox (newest
    /// first); the page's cursor is its last row's sort key.
    public func list(direction: String, status: HandoffStatus?, service: Service?, overdueOnly: Bool, page: PageRequest) throws -> HandoffList {
        var sql = "SELECT \(Self.viewColumnsWithoutBody), \(Self.closedSQL) AS closed FROM referral WHERE direction = ?"
        var arguments: StatementArguments = [direction]
        if let status { sql += " AND status = ?"; _ = arguments.append(contentsOf: [status.rawValue]) }
        if let service { sql += " AND service = ?"; _ = arguments.append(contentsOf: [service.rawValue]) }
        let now = clock.now()
        if overdueOnly {
            let stamp = Timestamp.format(now)
            sql += " AND " + Breach.overdueSQL
            _ = arguments.append(contentsOf: [stamp, stamp, stamp])
        }
        let inbound = direction == "inbound"
        if let after = page.after {
            sql += inbound ? " AND (\(Self.closedSQL), due_respond, id) > (?, ?, ?)" : " AND (created_at, id) < (?, ?)"
            let key = try after.parts(inbound ? 3 : 2)
            let values: [any DatabaseValueConvertible] = inbound ? [Int(key[0]) ?? 0, key[1], key[2]] : key
            _ = arguments.append(contentsOf: StatementArguments(values))
        }
        sql += inbound ? " ORDER BY closed, due_respond, id" : " ORDER BY created_at DESC, id DESC"
        sql += " LIMIT ?"
        _ = arguments.append(contentsOf: [page.limit + 1])
        let bound = arguments
        let rows = try pool.read { db in try Row.fetchAll(db, sql: sql, arguments: bound) }
        let (items, next) = page.page(rows) { row in
            inbound ? [String(row["closed"] as Int), row["due_respond"], row["id"]] : [row["created_at"], row["id"]]
        }
        return HandoffList(handoffs: items.map { Self.view($0, now: now) }, next: next?.token)
    }

    /// 1 for a handoff that is closed, 0 for an open one: the inbox lists open ones first.
    private static let closedSQL = "CASE WHEN status IN ('declined','completed','cancelled') THEN 1 ELSE 0 END"

    /// What `/health` and `rujuk status` report: the outbox not yet committed at the broker,
    /// received referrals not yet answered, and open handoffs past a deadline, both ways.
    public func summary() throws -> LedgerSummary {
        let stamp = Timestamp.format(clock.now())
        return try pool.read { db in
            LedgerSummary(
                queued: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox WHERE committed_at IS NULL AND refused_code IS NULL") ?? 0,
                awaitingResponse: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM referral WHERE direction = 'inbound' AND status = 'received'") ?? 0,
                overdue: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM referral WHERE " + Breach.overdueSQL, arguments: [stamp, stamp, stamp]) ?? 0)
        }
    }


    /// Notifications after `seq`, oldest first.
    public func notifications(after seq: Int64, limit: Int = 500) throws -> [(Int64, [UInt8])] {
        try pool.read { db in
            try Row.fetchAll(db.cachedStatement(sql: "SELECT seq, payload FROM notification WHERE seq > ? ORDER BY seq LIMIT ?"), arguments: [seq, limit]).map { ($0[0], [UInt8]($0[1] as Data)) }
        }
    }

    /// Acknowledgments recorded for a message: what the adapter sent and received, with times.
    public func acknowledgments(for messageID: String) throws -> [(kind: String, at: Date)] {
        try pool.read { db in
            try Row.fetchAll(db.cachedStatement(sql: "SELECT kind, at FROM acknowledgment WHERE message_id = ? ORDER BY seq"), arguments: [messageID])
                .map { (kind: $0[0], at: Timestamp.parse($0[1]) ?? .distantPast) }
        }
    }
}

public struct LedgerSummary: Sendable, Codable, Equatable {
    /// Referrals and updates waiting for the broker's COMMIT.
    public var queued: Int
    /// Received referrals not yet accepted or declined.
    public var awaitingResponse: Int
    /// Open handoffs, sent or received, past one of their deadlines.
    public var overdue: Int

    enum CodingKeys: String, CodingKey {
        case queued, overdue
        case awaitingResponse = "awaiting_response"
    }
}

/// A row `Ledger.view(_:now:)` reads by position: GRDB's, or the hot path's `SQLRow`.
protocol ViewRow {
    /// A column's text; "" for NULL.
    func text(_ column: Int) -> String
}

extension Row: ViewRow {
    func text(_ column: Int) -> String { (self[column] as String?) ?? "" }
}

extension SQLRow: ViewRow {
    func text(_ column: Int) -> String { text(Int32(column)) }
}

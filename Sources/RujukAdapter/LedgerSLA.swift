import Foundation
import GRDB
import RujukCore
import RujukStorage

/// What one sweep did.
public struct SweepResult: Sendable, Equatable {
    /// Handoffs looked at (those whose `next_check_at` had come).
    public var examined = 0
    /// Breach notices queued for the broker (each also told to this agency's system).
    public var escalated = 0
    /// RESOLVED notices queued.
    public var resolved = 0
    /// `handoff.due_soon` and `handoff.overdue` notices to this agency's system.
    public var warned = 0

    public var acted: Bool { escalated + resolved + warned > 0 }
}

extension Ledger {
    /// The handoffs whose next check has come: the view's columns (`SweptHandoff` reads them
    /// by position), then the clocks' own.
    private static let dueHandoffs = """
        SELECT \(viewColumnsWithoutBody), esc_level, esc_clock, esc_since, esc_targets, told
        FROM referral WHERE next_check_at IS NOT NULL AND next_check_at <= ? ORDER BY next_check_at LIMIT ?
        """

    /// Runs the SLA clocks of every handoff whose next check has come, oldest first, at most
    /// `limit` of them, in one transaction.
    ///
    /// Outbound handoffs escalate: the escalation is recorded, queued in the outbox (so the
    /// link sends it through the broker exactly like a referral, and the broker's
    /// deduplication by id makes a resend after a crash harmless) and told to this agency's
    /// system — all in the transaction that moves the clock on, so it is recorded and sent
    /// once whatever happens between. Inbound handoffs warn this agency's system before and at
    /// a deadline. Handoffs are found through the partial index on `next_check_at`.
    @discardableResult
    public func sweep(limit: Int = 500) throws -> SweepResult {
        let now = clock.now()
        let stamp = Timestamp.format(now)
        var result = SweepResult()
        try pool.write { db in
            result = SweepResult()
            let rows = try Row.fetchAll(db.cachedStatement(sql: Self.dueHandoffs), arguments: [stamp, limit])
            for row in rows {
                result.examined += 1
                let handoff = SweptHandoff(row)
                if handoff.direction == "outbound" {
                    try escalateIfDue(db, handoff, now: now, stamp: stamp, result: &result)
                } else {
                    try warnIfDue(db, handoff, now: now, stamp: stamp, result: &result)
                }
            }
        }
        return result
    }

    /// When the sweep must look at a handoff whose status is changing to `status` at `now`:
    /// at once (`now`) if the change leaves it something to do — an escalation to resolve, a
    /// clock to escalate, a warning to give — and otherwise when the sweep itself would have
    /// scheduled its next look after finding nothing to do; nil when never. So a handoff that
    /// a change leaves with nothing to do is not read and written again by the next sweep, in
    /// a transaction of its own (that was most of a sender's work for each `received` event).
    func nextCheck(_ db: Database, afterChangeOf referralID: String, to status: HandoffStatus, now: Date) throws -> Date? {
        let next = try db.first(statements, "SELECT direction, priority, due_receive, due_respond, due_complete, esc_level, esc_clock, esc_since, told FROM referral WHERE id = ?",
                                .text(referralID)) { row -> Date? in
            func date(_ column: Int32) -> Date { Timestamp.parse(row.text(column)) ?? .distantPast }
            let clocks = RowClocks(row, from: 5)
            return nextCheck(afterChangeTo: status, direction: row.text(0), priority: Priority(rawValue: row.text(1)) ?? .routine,
                             deadlines: Deadlines(receive: date(2), respond: date(3), complete: date(4)), state: clocks.state, told: clocks.told, now: now)
        }
        // No such row: nothing for the sweep (the UPDATE that follows changes nothing either).
        return next ?? nil
    }

    /// The next check of a handoff whose status changes to `status` now, from what its row holds.
    func nextCheck(afterChangeTo status: HandoffStatus, direction: String, priority: Priority, deadlines: Deadlines,
                   state: EscalationState, told: Set<String>, now: Date) -> Date? {
        let policy = sla.escalation
        if direction == "outbound" {
            guard SLAClock.senderStep(now: now, status: status, deadlines: deadlines, state: state, level2After: policy.level2After) == .none else { return now }
            return SLAClock.senderNextCheck(status: status, deadlines: deadlines, state: state, level2After: policy.level2After)
        }
        let lead = policy.warnBefore[priority] ?? 0
        guard SLAClock.recipientStep(now: now, status: status, deadlines: deadlines, told: told, lead: lead) == .none else { return now }
        return SLAClock.recipientNextCheck(status: status, deadlines: deadlines, told: told, lead: lead)
    }

    // MARK: - Sender

    private func escalateIfDue(_ db: Database, _ handoff: SweptHandoff, now: Date, stamp: String, result: inout SweepResult) throws {
        let policy = sla.escalation
        var state = handoff.state
        var targets = handoff.targets
        switch SLAClock.senderStep(now: now, status: handoff.status, deadlines: handoff.deadlines, state: state, level2After: policy.level2After) {
        case .none:
            break
        case .escalate(let level, let clock):
            let sender = registry[agency] ?? Agency(id: agency, name: agency, kind: .police, province: "ID-JK", regency: "", services: [])
            let newTargets = policy.targets(level: level, sender: sender, service: handoff.service)
            for target in newTargets where !targets.contains(target) { targets.append(target) }
            let recipientProvince = registry[handoff.to]?.province ?? sender.province
            let escalation = Escalation(
                referralId: handoff.id, notice: .breach, level: level, clock: clock, from: agency, to: handoff.to,
                targets: newTargets, service: handoff.service, priority: handoff.priority, province: sender.province,
                due: handoff.deadlines[clock], status: handoff.status,
                suggestions: registry.alternatives(service: handoff.service, province: recipientProvince, excluding: [agency, handoff.to], sender: agency),
                at: now)
            try record(db, escalation, direction: "sent", queue: !newTargets.isEmpty, stamp: stamp)
            try notify(db, type: "handoff.escalated", referralID: handoff.id, view: handoff.view(now: now), escalation: escalation,
                       dutyOfficer: policy.dutyOfficer(for: agency), stamp: stamp)
            // Level 2 is counted from when level 1 was first reached, not from each later clock.
            state = EscalationState(level: level, clock: clock, since: level == state.level ? state.since ?? now : now)
            result.escalated += 1
        case .resolve:
            if let clock = state.clock {
                let escalation = Escalation(
                    referralId: handoff.id, notice: .resolved, level: state.level, clock: clock, from: agency, to: handoff.to,
                    targets: targets, service: handoff.service, priority: handoff.priority,
                    province: registry[agency]?.province ?? "ID-JK", due: handoff.deadlines[clock], status: handoff.status,
                    suggestions: [], at: now)
                try record(db, escalation, direction: "sent", queue: !targets.isEmpty, stamp: stamp)
                try notify(db, type: "handoff.escalation_resolved", referralID: handoff.id, view: handoff.view(now: now), escalation: escalation, stamp: stamp)
                result.resolved += 1
            }
            state = .none
            targets = []
        }
        let next = SLAClock.senderNextCheck(status: handoff.status, deadlines: handoff.deadlines, state: state, level2After: policy.level2After)
        try db.run(statements, "UPDATE referral SET esc_level = ?, esc_clock = ?, esc_since = ?, esc_targets = ?, next_check_at = ? WHERE id = ?",
                   .int(Int64(state.level)), .optional(state.clock?.rawValue), .optional(state.since.map(Timestamp.format)),
                   .text(targets.joined(separator: " ")), .optional(next.map(Timestamp.format)), .text(handoff.id))
    }

    /// Records an escalation sent or received, and queues a sent one for the broker.
    private func record(_ db: Database, _ escalation: Escalation, direction: String, queue: Bool, stamp: String) throws {
        let payload = JSONCoding.encode(escalation)
        try db.run(statements, "INSERT INTO escalation (id, referral_id, direction, notice, level, clock, payload, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   .text(escalation.id), .text(escalation.referralId), .text(direction), .text(escalation.notice.rawValue),
                   .int(Int64(escalation.level)), .text(escalation.clock.rawValue), .blob(payload), .text(stamp))
        // With nobody to tell through the broker (no task force configured), it stays local.
        guard queue else { return }
        try db.run(statements, "INSERT INTO outbox (message_id, kind, referral_id, payload, created_at) VALUES (?, 'escalate', ?, ?, ?)",
                   .text(escalation.id), .text(escalation.referralId), .blob(payload), .text(stamp))
    }

    // MARK: - Recipient

    private func warnIfDue(_ db: Database, _ handoff: SweptHandoff, now: Date, stamp: String, result: inout SweepResult) throws {
        let lead = sla.escalation.warnBefore[handoff.priority] ?? 0
        var told = handoff.told
        let step = SLAClock.recipientStep(now: now, status: handoff.status, deadlines: handoff.deadlines, told: told, lead: lead)
        switch step {
        case .none:
            break
        case .dueSoon(let clock):
            try notify(db, type: "handoff.due_soon", referralID: handoff.id, view: handoff.view(now: now), clock: clock, due: handoff.deadlines[clock], stamp: stamp)
            result.warned += 1
        case .overdue(let clock):
            try notify(db, type: "handoff.overdue", referralID: handoff.id, view: handoff.view(now: now), clock: clock, due: handoff.deadlines[clock], stamp: stamp)
            result.warned += 1
        }
        told.formUnion(SLAClock.told(after: step))
        let next = SLAClock.recipientNextCheck(status: handoff.status, deadlines: handoff.deadlines, told: told, lead: lead)
        try db.run(statements, "UPDATE referral SET told = ?, next_check_at = ? WHERE id = ?",
                   .text(told.sorted().joined(separator: " ")), .optional(next.map(Timestamp.format)), .text(handoff.id))
    }

    // MARK: - Escalations told to this agency

    /// Stores an escalation delivered to this agency (a task force, LPSK) and tells its system
    /// once. Returns false for a redelivery.
    func storeReceivedEscalation(_ db: Database, _ escalation: Escalation, payload: [UInt8], stamp: String) throws -> Bool {
        try db.run(statements, "INSERT OR IGNORE INTO escalation (id, referral_id, direction, notice, level, clock, payload, at) VALUES (?, ?, 'received', ?, ?, ?, ?, ?)",
                   .text(escalation.id), .text(escalation.referralId), .text(escalation.notice.rawValue), .int(Int64(escalation.level)),
                   .text(escalation.clock.rawValue), .blob(payload), .text(stamp))
        guard db.changesCount == 1 else { return false }
        try notify(db, type: "escalation.received", referralID: escalation.referralId, escalation: escalation, stamp: stamp, lookUp: false)
        return true
    }

    /// Escalations this agency sent or was told about, oldest first; for one handoff if given.
    public func escalations(referralID: String? = nil, page: PageRequest = PageRequest(limit: 500)) throws -> (escalations: [Escalation], next: PageCursor?) {
        let after: Int64 = try page.after.map { cursor in
            guard let rowid = Int64(try cursor.parts(1)[0]) else { throw RujukError(.badParameter, "'cursor' belongs to another list") }
            return rowid
        } ?? 0
        let rows = try pool.read { db in
            let sql = "SELECT rowid, payload FROM escalation WHERE rowid > ?" + (referralID == nil ? "" : " AND referral_id = ?") + " ORDER BY rowid LIMIT ?"
            let arguments: StatementArguments = referralID.map { [after, $0, page.limit + 1] } ?? [after, page.limit + 1]
            return try Row.fetchAll(db, sql: sql, arguments: arguments)
        }
        let (items, next) = page.page(rows) { [String($0[0] as Int64)] }
        return (items.compactMap { try? JSONCoding.decode(Escalation.self, from: [UInt8]($0[1] as Data), what: "ledger") }, next)
    }
}

/// The columns the sweep reads.
private struct SweptHandoff {
    var id: String
    var direction: String
    var status: HandoffStatus
    var to: String
    var service: Service
    var priority: Priority
    var deadlines: Deadlines
    var state: EscalationState
    var targets: [String]
    var told: Set<String>
    let row: Row

    /// The notification's view of the handoff, from the row already read; built only for a
    /// handoff that gets a notification.
    func view(now: Date) -> HandoffView { Ledger.view(row, now: now) }

    /// From a row of `Ledger.dueHandoffs`: the view's columns, then the clocks' five.
    init(_ row: Row) {
        typealias Column = Ledger.ViewColumn
        self.row = row
        func date(_ column: Column) -> Date { Timestamp.parse(row[column.rawValue]) ?? .distantPast }
        let clocks = Column.count
        id = row[Column.id.rawValue]
        direction = row[Column.direction.rawValue]
        status = HandoffStatus(rawValue: row[Column.status.rawValue]) ?? .requested
        to = row[Column.to.rawValue]
        service = Service(rawValue: row[Column.service.rawValue]) ?? .medicalCare
        priority = Priority(rawValue: row[Column.priority.rawValue]) ?? .routine
        deadlines = Deadlines(receive: date(.dueReceive), respond: date(.dueRespond), complete: date(.dueComplete))
        let clock: String? = row[clocks + 1]
        let since: String? = row[clocks + 2]
        state = EscalationState(level: row[clocks], clock: clock.flatMap(Breach.init(rawValue:)), since: since.flatMap(Timestamp.parse))
        targets = (row[clocks + 3] as String).split(separator: " ").map(String.init)
        told = Set((row[clocks + 4] as String).split(separator: " ").map(String.init))
    }
}

/// A handoff's escalation state and the warnings already told, from the four columns
/// `esc_level, esc_clock, esc_since, told` of a row, the first of them at `first`.
struct RowClocks {
    var state: EscalationState
    var told: Set<String>

    init(_ row: SQLRow, from first: Int) {
        let first = Int32(first)
        state = EscalationState(level: Int(row.int(first)), clock: Breach(rawValue: row.text(first + 1)),
                                since: row.isNull(first + 2) ? nil : Timestamp.parse(row.text(first + 2)))
        told = Set(row.text(first + 3).split(separator: " ").map(String.init))
    }
}

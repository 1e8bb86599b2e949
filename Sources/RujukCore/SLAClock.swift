import Foundation

/// The three deadlines of a handoff.
public struct Deadlines: Sendable, Equatable {
    public var receive: Date
    public var respond: Date
    public var complete: Date

    public init(receive: Date, respond: Date, complete: Date) {
        self.receive = receive
        self.respond = respond
        self.complete = complete
    }

    public subscript(clock: Breach) -> Date {
        switch clock {
        case .receive: receive
        case .respond: respond
        case .complete: complete
        }
    }
}

/// Where a sender's escalation of one handoff stands.
public struct EscalationState: Sendable, Equatable {
    /// 0 when nothing is escalated; else the level reached.
    public var level: Int
    /// The clock escalated.
    public var clock: Breach?
    /// When the current level was reached.
    public var since: Date?

    public init(level: Int = 0, clock: Breach? = nil, since: Date? = nil) {
        self.level = level
        self.clock = clock
        self.since = since
    }

    public static let none = EscalationState()
}

/// The SLA clocks as the adapters run them: pure functions of a handoff's status, deadlines
/// and what has been done so far, so every rule is tested without a database or a wait.
public enum SLAClock {
    /// A clock is met once the handoff has got past what it measures.
    public static func isMet(_ clock: Breach, status: HandoffStatus) -> Bool {
        switch clock {
        case .receive: status != .requested
        case .respond: status != .requested && status != .received
        case .complete: status.isTerminal
        }
    }

    /// The clocks in order. Deadlines are ordered the same way (sla.toml and the validator
    /// insist on receive <= respond <= complete).
    static let order: [Breach] = [.receive, .respond, .complete]

    // MARK: - The sender: escalation

    public enum SenderStep: Sendable, Equatable {
        case none
        /// Send a breach notice at `level` for `clock`.
        case escalate(level: Int, clock: Breach)
        /// The escalated clock is met (or the handoff ended): send RESOLVED, stop.
        case resolve
    }

    /// What the sender's adapter must do at `now`.
    ///
    /// A run-out clock escalates at level 1; if it stays run out for `level2After`, level 2. A
    /// later clock that runs out while one is escalated is escalated at the level reached.
    /// Once the escalated clock is met, the escalation is resolved. An adapter that was down
    /// through several of these steps takes one at a time, so it escalates once on start.
    public static func senderStep(now: Date, status: HandoffStatus, deadlines: Deadlines, state: EscalationState, level2After: TimeInterval) -> SenderStep {
        if let clock = state.clock, isMet(clock, status: status) { return .resolve }
        guard let breach = Breach.at(now, status: status, dueReceive: deadlines.receive, dueRespond: deadlines.respond, dueComplete: deadlines.complete) else {
            return .none
        }
        guard let current = state.clock, let since = state.since else { return .escalate(level: 1, clock: breach) }
        if breach > current { return .escalate(level: max(state.level, 1), clock: breach) }
        if state.level == 1, now >= since + level2After { return .escalate(level: 2, clock: current) }
        return .none
    }

    /// When the sender's adapter must look at this handoff again; nil when never (it is over
    /// and nothing is escalated). May be in the past: then at once.
    public static func senderNextCheck(status: HandoffStatus, deadlines: Deadlines, state: EscalationState, level2After: TimeInterval) -> Date? {
        if let clock = state.clock, isMet(clock, status: status) { return .distantPast }
        if status.isTerminal { return nil }
        var candidates: [Date] = []
        // The first clock not met and later than the one escalated: it runs out just after its
        // deadline (a clock runs out when now is past it).
        if let next = order.first(where: { !isMet($0, status: status) && (state.clock == nil || $0 > state.clock!) }) {
            candidates.append(deadlines[next] + 0.001)
        }
        if state.level == 1, let since = state.since { candidates.append(since + level2After) }
        return candidates.min()
    }

    // MARK: - The recipient: warnings

    public enum RecipientStep: Sendable, Equatable {
        case none
        /// `clock` runs out at its deadline, within the lead time: warn once.
        case dueSoon(Breach)
        /// `clock` has run out: say so once.
        case overdue(Breach)
    }

    /// The clocks a recipient answers for: it responds, then it completes.
    static let recipientClocks: [Breach] = [.respond, .complete]

    /// What the recipient's adapter must tell its agency system at `now`. `told` holds what
    /// was already said, as `"respond.soon"`, `"respond.over"` and so on.
    public static func recipientStep(now: Date, status: HandoffStatus, deadlines: Deadlines, told: Set<String>, lead: TimeInterval) -> RecipientStep {
        for clock in recipientClocks where !isMet(clock, status: status) {
            let due = deadlines[clock]
            if now > due {
                if !told.contains("\(clock.rawValue).over") { return .overdue(clock) }
            } else if now >= due - lead, !told.contains("\(clock.rawValue).soon") {
                return .dueSoon(clock)
            }
        }
        return .none
    }

    /// When the recipient's adapter must look again; nil when nothing is left to say.
    public static func recipientNextCheck(status: HandoffStatus, deadlines: Deadlines, told: Set<String>, lead: TimeInterval) -> Date? {
        var candidates: [Date] = []
        for clock in recipientClocks where !isMet(clock, status: status) {
            let due = deadlines[clock]
            if !told.contains("\(clock.rawValue).soon") && !told.contains("\(clock.rawValue).over") {
                candidates.append(due - lead)
            } else if !told.contains("\(clock.rawValue).over") {
                candidates.append(due + 0.001)
            }
        }
        return candidates.min()
    }

    /// What a step adds to `told`: an overdue notice also stands for the warning before it.
    public static func told(after step: RecipientStep) -> [String] {
        switch step {
        case .none: []
        case .dueSoon(let clock): ["\(clock.rawValue).soon"]
        case .overdue(let clock): ["\(clock.rawValue).soon", "\(clock.rawValue).over"]
        }
    }
}

import Foundation

/// Which clock of a handoff has run out.
public enum Breach: String, Codable, Sendable, Comparable {
    case receive, respond, complete

    public static func < (lhs: Breach, rhs: Breach) -> Bool {
        let order: [Breach] = [.receive, .respond, .complete]
        return order.firstIndex(of: lhs)! < order.firstIndex(of: rhs)!
    }

    /// `at(_:status:…)` as an SQL condition over columns `status`, `due_receive`, `due_respond`
    /// and `due_complete` (RFC 3339 UTC text, which sorts as time does); bind the current
    /// `Timestamp.format(now)` to its three `?`.
    public static let overdueSQL = "status NOT IN ('declined','completed','cancelled') AND (due_complete < ? OR (status IN ('requested','received') AND due_respond < ?) OR (status = 'requested' AND due_receive < ?))"

    /// The clock that has run out at `now`, if any: the latest one that applies to the status.
    public static func at(_ now: Date, status: HandoffStatus, dueReceive: Date, dueRespond: Date, dueComplete: Date) -> Breach? {
        if status.isTerminal { return nil }
        if now > dueComplete { return .complete }
        if now > dueRespond, status == .requested || status == .received { return .respond }
        if now > dueReceive, status == .requested { return .receive }
        return nil
    }
}

/// A handoff as the HTTP APIs show it: the envelope, where it stands, and its history.
/// `body` is present only in the adapter's API, for the agency the referral was for or from.
public struct HandoffView: Codable, Sendable, Equatable {
    public var id: String
    public var caseRef: String
    public var from: String
    public var to: String
    public var service: Service
    public var priority: Priority
    public var location: Location
    public var reason: ReferralReason?
    public var status: HandoffStatus
    public var createdAt: Date
    public var dueReceive: Date
    public var dueRespond: Date
    public var dueComplete: Date
    public var updatedAt: Date
    /// The clock that has run out, if one has.
    public var overdue: Breach?
    /// Oldest first.
    public var history: [HandoffEvent]?
    public var body: ReferralBody?
    /// In an adapter's API: `outbound` (sent by this agency) or `inbound`.
    public var direction: String?
    /// In an adapter's API, for outbound referrals: `queued` until the broker's COMMIT, then `sent`.
    public var delivery: String?

    public init(
        id: String, caseRef: String, from: String, to: String, service: Service, priority: Priority, location: Location,
        reason: ReferralReason?, status: HandoffStatus, createdAt: Date, dueReceive: Date, dueRespond: Date, dueComplete: Date,
        updatedAt: Date, overdue: Breach? = nil, history: [HandoffEvent]? = nil, body: ReferralBody? = nil,
        direction: String? = nil, delivery: String? = nil
    ) {
        self.id = id
        self.caseRef = caseRef
        self.from = from
        self.to = to
        self.service = service
        self.priority = priority
        self.location = location
        self.reason = reason
        self.status = status
        self.createdAt = createdAt
        self.dueReceive = dueReceive
        self.dueRespond = dueRespond
        self.dueComplete = dueComplete
        self.updatedAt = updatedAt
        self.overdue = overdue
        self.history = history
        self.body = body
        self.direction = direction
        self.delivery = delivery
    }

    enum CodingKeys: String, CodingKey {
        case id, from, to, service, priority, location, reason, status, overdue, history, body, direction, delivery
        case caseRef = "case_ref"
        case createdAt = "created_at"
        case dueReceive = "due_receive"
        case dueRespond = "due_respond"
        case dueComplete = "due_complete"
        case updatedAt = "updated_at"
    }
}

/// A list answer of the HTTP APIs: one page, and the cursor of the next when there may be more.
public struct HandoffList: Codable, Sendable {
    public var handoffs: [HandoffView]
    /// Pass as `?cursor=` for the next page; absent on the last.
    public var next: String?
    public init(handoffs: [HandoffView], next: String? = nil) {
        self.handoffs = handoffs
        self.next = next
    }
}

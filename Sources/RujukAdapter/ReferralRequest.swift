import Foundation
import RujukCore

/// What an agency system POSTs to create a referral; the adapter fills in the rest (sender,
/// creation time, deadlines from the SLA policy, and an id if none was given).
public struct ReferralRequest: Codable, Sendable {
    /// Optional UUIDv7: give one to make a retried POST idempotent.
    public var id: String?
    public var caseRef: String
    public var to: String
    public var service: Service
    public var priority: Priority
    /// Defaults to the sending agency's province and regency.
    public var location: Location?
    public var reason: String
    public var body: ReferralBody

    public init(id: String? = nil, caseRef: String, to: String, service: Service, priority: Priority, location: Location? = nil, reason: String, body: ReferralBody) {
        self.id = id
        self.caseRef = caseRef
        self.to = to
        self.service = service
        self.priority = priority
        self.location = location
        self.reason = reason
        self.body = body
    }

    enum CodingKeys: String, CodingKey {
        case id, to, service, priority, location, reason, body
        case caseRef = "case_ref"
    }
}

/// The body of accept/decline/start/complete/cancel.
public struct StatusChangeRequest: Codable, Sendable {
    public var reason: String?
    public var outcome: String?

    public init(reason: String? = nil, outcome: String? = nil) {
        self.reason = reason
        self.outcome = outcome
    }
}

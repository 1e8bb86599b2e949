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
    /// Defaults to the sending agency's province and regency code.
    public var location: Location?
    /// Why, as a code; the words, if any, go in `body.reason`, sealed for the recipient.
    public var reason: ReferralReason
    public var body: ReferralBody

    public init(id: String? = nil, caseRef: String, to: String, service: Service, priority: Priority, location: Location? = nil, reason: ReferralReason, body: ReferralBody) {
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

/// The body of accept/decline/start/complete/cancel: a reason code for decline and cancel, an
/// outcome code for complete, and the words, if any, in `note` (sealed for the other agency).
public struct StatusChangeRequest: Codable, Sendable {
    public var reason: ClosingReason?
    public var outcome: Outcome?
    public var note: UpdateNote?

    public init(reason: ClosingReason? = nil, outcome: Outcome? = nil, note: UpdateNote? = nil) {
        self.reason = reason
        self.outcome = outcome
        self.note = note
    }
}

import Foundation

/// Where the person is, as the sender knows it: a province as ISO 3166-2 (`ID-KR` for the
/// Riau Islands, `MY-01` for Johor) and a regency or city by name.
public struct Location: Codable, Sendable, Equatable {
    public var province: String
    public var regency: String

    public init(province: String, regency: String) {
        self.province = province
        self.regency = regency
    }
}

/// A request from one agency to another to provide a service to a person.
///
/// The fields outside `body` form the envelope: the broker reads them to route, validate and
/// track the handoff, and they hold no personal data (`caseRef` is a pseudonymous reference,
/// `reason` a short non-identifying statement of need). Everything about the person — who they
/// are, their consent, the notes — is in `body`, which only the recipient agency reads.
public struct Referral: Codable, Sendable, Equatable {
    /// UUIDv7 chosen by the sender; the deduplication key everywhere.
    public var id: String
    /// The sender's pseudonymous case reference, never a name.
    public var caseRef: String
    public var from: String
    public var to: String
    public var service: Service
    public var priority: Priority
    public var location: Location
    /// Why the service is needed, without identifying anyone (at most 280 characters).
    public var reason: String
    public var createdAt: Date
    /// The recipient's adapter must have stored the referral by then.
    public var dueReceive: Date
    /// The recipient must have accepted or declined by then.
    public var dueRespond: Date
    /// The service must be completed by then.
    public var dueComplete: Date
    /// The personal part: for the recipient's eyes only.
    public var body: ReferralBody

    public init(
        id: String = MessageID.make(), caseRef: String, from: String, to: String, service: Service,
        priority: Priority, location: Location, reason: String, createdAt: Date,
        dueReceive: Date, dueRespond: Date, dueComplete: Date, body: ReferralBody
    ) {
        self.id = id
        self.caseRef = caseRef
        self.from = from
        self.to = to
        self.service = service
        self.priority = priority
        self.location = location
        self.reason = reason
        self.createdAt = createdAt
        self.dueReceive = dueReceive
        self.dueRespond = dueRespond
        self.dueComplete = dueComplete
        self.body = body
    }

    enum CodingKeys: String, CodingKey {
        case id, from, to, service, priority, location, reason, body
        case caseRef = "case_ref"
        case createdAt = "created_at"
        case dueReceive = "due_receive"
        case dueRespond = "due_respond"
        case dueComplete = "due_complete"
    }
}

/// The personal part of a referral.
public struct ReferralBody: Codable, Sendable, Equatable {
    public var subject: Subject
    public var consent: Consent
    public var notes: String?

    public init(subject: Subject, consent: Consent, notes: String? = nil) {
        self.subject = subject
        self.consent = consent
        self.notes = notes
    }
}

/// The person the referral is about.
public struct Subject: Codable, Sendable, Equatable {
    /// `0-11`, `12-17`, `18-24`, `25-34`, `35-49`, `50+` or `unknown`.
    public var ageBand: String
    /// `female`, `male`, `other` or `unknown`.
    public var gender: String
    /// ISO 3166-1 alpha-2.
    public var nationality: String
    /// BCP 47 language tags, e.g. `id`, `jv`, `ms`.
    public var languages: [String]
    /// Under 18: child-protection rules apply.
    public var child: Bool
    /// Needs the recipient must plan for, e.g. `interpreter`, `wheelchair`, `pregnancy`.
    public var needs: [String]
    /// The person's name, for the recipient only.
    public var name: String?
    /// How to reach the person or their guardian, for the recipient only.
    public var contact: String?

    public init(
        ageBand: String, gender: String, nationality: String, languages: [String] = [], child: Bool,
        needs: [String] = [], name: String? = nil, contact: String? = nil
    ) {
        self.ageBand = ageBand
        self.gender = gender
        self.nationality = nationality
        self.languages = languages
        self.child = child
        self.needs = needs
        self.name = name
        self.contact = contact
    }

    enum CodingKeys: String, CodingKey {
        case gender, nationality, languages, child, needs, name, contact
        case ageBand = "age_band"
    }

    public static let ageBands = ["0-11", "12-17", "18-24", "25-34", "35-49", "50+", "unknown"]
    public static let genders = ["female", "male", "other", "unknown"]
}

/// The person's consent to the referral, or an override of it where the law allows.
public struct Consent: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable {
        case given
        /// Referred without consent (an emergency, or a child-protection case); needs a justification.
        case overridden
    }

    public var status: Status
    /// The kinds of agency the person agreed to be referred to.
    public var scope: [AgencyKind]
    public var date: Date
    /// Who recorded it: an officer's id or role, not the person's name.
    public var recordedBy: String
    /// Why consent was overridden; required when `status` is `overridden`.
    public var justification: String?

    public init(status: Status, scope: [AgencyKind], date: Date, recordedBy: String, justification: String? = nil) {
        self.status = status
        self.scope = scope
        self.date = date
        self.recordedBy = recordedBy
        self.justification = justification
    }

    enum CodingKeys: String, CodingKey {
        case status, scope, date, justification
        case recordedBy = "recorded_by"
    }
}

/// A status change on a handoff, made by one of its two agencies (or by the broker, for
/// `received`, on the recipient's behalf when its adapter confirmed storage).
public struct HandoffEvent: Codable, Sendable, Equatable {
    /// UUIDv7 chosen by whoever made the change; the deduplication key.
    public var id: String
    public var referralId: String
    /// The agency that made the change.
    public var by: String
    public var status: HandoffStatus
    /// Required for `declined` and `cancelled`.
    public var reason: String?
    /// Required for `completed`.
    public var outcome: String?
    public var at: Date

    public init(
        id: String = MessageID.make(), referralId: String, by: String, status: HandoffStatus,
        reason: String? = nil, outcome: String? = nil, at: Date
    ) {
        self.id = id
        self.referralId = referralId
        self.by = by
        self.status = status
        self.reason = reason
        self.outcome = outcome
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case id, by, status, reason, outcome, at
        case referralId = "referral_id"
    }
}

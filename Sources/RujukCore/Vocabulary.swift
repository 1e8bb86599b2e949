/// The services an agency can be asked for. A closed list: the protocol refuses others.
public enum Service: String, Codable, CaseIterable, Sendable, Comparable {
    case medicalCare = "medical_care"
    case psychosocialSupport = "psychosocial_support"
    case shelter
    case legalAid = "legal_aid"
    case witnessProtection = "witness_protection"
    case restitution
    case repatriation
    case reintegration
    case investigation
    case familyTracing = "family_tracing"
    case documentIssuance = "document_issuance"
    case interpretation

    public static func < (lhs: Service, rhs: Service) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// How urgent a referral is; the SLA policy gives each priority its own clocks.
public enum Priority: String, Codable, CaseIterable, Sendable {
    case emergency, urgent, routine
}

/// The kinds of agency in the integrated services for trafficking victims.
public enum AgencyKind: String, Codable, CaseIterable, Sendable {
    case police
    case witnessProtection = "witness_protection"
    case health
    case legalAid = "legal_aid"
    case consulate
    case socialServices = "social_services"
    case shelter
    case taskForce = "task_force"
    case immigration
    case labour
}

/// Where a handoff stands, modelled on FHIR Task's status.
public enum HandoffStatus: String, Codable, CaseIterable, Sendable {
    /// Stored at the broker; not yet stored by the recipient.
    case requested
    /// Stored in the recipient's ledger.
    case received
    /// The recipient agency agreed to provide the service.
    case accepted
    /// The recipient agency refused, with a reason.
    case declined
    /// The service has started.
    case inProgress = "in_progress"
    /// The service is complete, with an outcome.
    case completed
    /// The sender withdrew the referral before completion.
    case cancelled

    /// No further change is possible.
    public var isTerminal: Bool {
        switch self {
        case .declined, .completed, .cancelled: true
        default: false
        }
    }
}

/// Why a referral is made, as a code: the envelope holds no free text an agency writes, since
/// the broker stores it and coordinators read it. The words, if any, are sealed for the
/// recipient (`ReferralBody.reason`).
public enum ReferralReason: String, Codable, CaseIterable, Sendable {
    case medicalExamination = "medical_examination"
    case medicalTreatment = "medical_treatment"
    case psychosocialCare = "psychosocial_care"
    case safeShelter = "safe_shelter"
    case legalAssistance = "legal_assistance"
    case witnessProtection = "witness_protection"
    case restitutionClaim = "restitution_claim"
    case repatriation
    case familyReunification = "family_reunification"
    case reintegration
    case identityDocuments = "identity_documents"
    case interpretation
    case investigation
    case other
}

/// Why a handoff was declined by its recipient or cancelled by its sender, as a code; the words,
/// if any, are sealed for the other agency (`UpdateNote.reason`).
public enum ClosingReason: String, Codable, CaseIterable, Sendable {
    case noCapacity = "no_capacity"
    case notEligible = "not_eligible"
    case serviceUnavailable = "service_unavailable"
    case outsideArea = "outside_area"
    case conflictOfInterest = "conflict_of_interest"
    case personDeclined = "person_declined"
    case personUnreachable = "person_unreachable"
    case referredElsewhere = "referred_elsewhere"
    case noLongerNeeded = "no_longer_needed"
    case duplicate
    case enteredInError = "entered_in_error"
    case other
}

/// How a service ended, as a code; the words, if any, are sealed for the sender
/// (`UpdateNote.outcome`).
public enum Outcome: String, Codable, CaseIterable, Sendable {
    case serviceProvided = "service_provided"
    case partiallyProvided = "partially_provided"
    case personWithdrew = "person_withdrew"
    case personUnreachable = "person_unreachable"
    case transferred
    case other
}

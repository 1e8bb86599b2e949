import Foundation

/// Where the person is, as the sender knows it: a province as ISO 3166-2 (`ID-KR` for the
/// Riau Islands, `MY-01` for Johor) and, in Indonesia, a regency or city by its Kemendagri code
/// (`21.71` for Kota Batam). Codes, not names: nothing typed by hand reaches the broker.
public struct Location: Codable, Sendable, Equatable {
    public var province: String
    public var regency: String?

    public init(province: String, regency: String? = nil) {
        self.province = province
        self.regency = regency
    }
}

/// A request from one agency to another to provide a service to a person.
///
/// What travels is an envelope and a sealed part. The envelope is what the broker reads to
/// route, authorize, validate and track the handoff; it holds no personal data and no free text
/// (`caseRef` is a pseudonymous reference, `reason` a code, `consent` says only on what basis
/// the person is referred and to which kinds of agency). Everything about the person — who they
/// are, the consent record itself, the reason and the notes in words — is a `ReferralBody`, sealed by
/// the sending adapter for the recipient agency's key (`sealed`); only the recipient's adapter
/// can open it.
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
    /// Why the service is needed, as a code.
    public var reason: ReferralReason
    public var createdAt: Date
    /// The recipient's adapter must have stored the referral by then.
    public var dueReceive: Date
    /// The recipient must have accepted or declined by then.
    public var dueRespond: Date
    /// The service must be completed by then.
    public var dueComplete: Date
    /// The basis of the referral, for the broker to check; the full record is sealed.
    public var consent: ConsentClaim
    /// The personal part (a `ReferralBody`), for the recipient's eyes only.
    public var sealed: SealedBody

    public init(
        id: String = MessageID.make(), caseRef: String, from: String, to: String, service: Service,
        priority: Priority, location: Location, reason: ReferralReason, createdAt: Date,
        dueReceive: Date, dueRespond: Date, dueComplete: Date, consent: ConsentClaim, sealed: SealedBody
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
        self.consent = consent
        self.sealed = sealed
    }

    enum CodingKeys: String, CodingKey {
        case id, from, to, service, priority, location, reason, consent, sealed
        case caseRef = "case_ref"
        case createdAt = "created_at"
        case dueReceive = "due_receive"
        case dueRespond = "due_respond"
        case dueComplete = "due_complete"
    }

    /// The bytes the seal authenticates besides the plaintext (HPKE's associated data): the
    /// whole envelope, one field per line (Protocols/RRP.md section 9.2). A broker or anyone on
    /// the way that changes any of it makes the recipient refuse the referral, and the sealed
    /// part cannot be moved to another referral.
    public var sealedAssociatedData: [UInt8] {
        let fields: [String] = [
            "rujuk-referral/2", id, caseRef, from, to, service.rawValue, priority.rawValue, location.province, location.regency ?? "", reason.rawValue,
            Timestamp.format(createdAt), Timestamp.format(dueReceive), Timestamp.format(dueRespond), Timestamp.format(dueComplete),
            consent.status.rawValue, consent.ground?.rawValue ?? "", consent.scope.map(\.rawValue).sorted().joined(separator: ","),
        ]
        return LengthPrefixedFields.encode(fields)
    }
}

/// The envelope's statement of the consent: what the broker needs to authorize the referral and
/// to flag an override, and nothing about the person. It must agree with the sealed record;
/// the recipient's adapter checks that it does.
public struct ConsentClaim: Codable, Sendable, Equatable {
    public var status: Consent.Status
    /// The kinds of agency the person agreed to be referred to (for `given`).
    public var scope: [AgencyKind]
    /// The legal ground of an override; required when `status` is `overridden`.
    public var ground: Consent.Ground?

    public init(status: Consent.Status, scope: [AgencyKind], ground: Consent.Ground? = nil) {
        self.status = status
        self.scope = scope
        self.ground = ground
    }

    public init(_ consent: Consent) {
        self.init(status: consent.status, scope: consent.scope, ground: consent.ground)
    }
}

/// A `ReferralBody` sealed with HPKE (RFC 9180) in auth mode, X25519 / HKDF-SHA256 /
/// ChaCha20-Poly1305: for the recipient agency's key, authenticated by the sender agency's key,
/// with the envelope as associated data (`Referral.sealedAssociatedData`).
public struct SealedBody: Codable, Sendable, Equatable {
    /// The only suite of version 1.
    public static let suiteV1 = "hpke-auth-x25519-sha256-chacha20poly1305"

    public var suite: String
    /// The encapsulated key, base64 (32 bytes).
    public var enc: String
    /// The ciphertext of the body's JSON, base64.
    public var ct: String
    /// The HPKE sequence number within the sealing session of `enc` (RRP.md section 9.2);
    /// absent means 0, a session's first seal.
    public var seq: Int?

    /// The largest sequence number of a session.
    public static let maxSeq = Int(UInt32.max)

    public init(suite: String = SealedBody.suiteV1, enc: String, ct: String, seq: Int? = nil) {
        self.suite = suite
        self.enc = enc
        self.ct = ct
        self.seq = seq
    }
}

/// The personal part of a referral.
public struct ReferralBody: Codable, Sendable, Equatable {
    public var subject: Subject
    public var consent: Consent
    /// Why the service is needed, in the sender's words (the envelope has the code).
    public var reason: String?
    public var notes: String?

    public init(subject: Subject, consent: Consent, reason: String? = nil, notes: String? = nil) {
        self.subject = subject
        self.consent = consent
        self.reason = reason
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
        /// Referred without consent (an emergency, or a child-protection case); needs a ground
        /// and a justification.
        case overridden
    }

    /// The cases in which the law allows a referral without the person's consent.
    public enum Ground: String, Codable, Sendable, CaseIterable {
        /// Life or health in immediate danger; only on an `emergency` referral.
        case emergency
        /// A child at risk (UU 35/2014 on child protection); only for a subject who is a child.
        case childProtection = "child_protection"
    }

    public var status: Status
    /// The kinds of agency the person agreed to be referred to.
    public var scope: [AgencyKind]
    public var date: Date
    /// Who recorded it: an officer's id or role, not the person's name.
    public var recordedBy: String
    /// The ground of an override; required when `status` is `overridden`.
    public var ground: Ground?
    /// Why consent was overridden, in writing; required when `status` is `overridden`.
    public var justification: String?

    public init(status: Status, scope: [AgencyKind], date: Date, recordedBy: String, ground: Ground? = nil, justification: String? = nil) {
        self.status = status
        self.scope = scope
        self.date = date
        self.recordedBy = recordedBy
        self.ground = ground
        self.justification = justification
    }

    enum CodingKeys: String, CodingKey {
        case status, scope, date, ground, justification
        case recordedBy = "recorded_by"
    }
}

/// A status change on a handoff, made by one of its two agencies (or by the broker, for
/// `received`, on the recipient's behalf when its adapter confirmed storage).
///
/// What travels holds codes only; the words an agency writes with a change (why it declined,
/// how the service ended) are an `UpdateNote` sealed for the other agency (`sealed`), as a
/// referral's body is. `note` is that note opened, in an adapter's own records and API: it is
/// never sent, and the broker refuses an UPDATE that carries one.
public struct HandoffEvent: Codable, Sendable, Equatable {
    /// UUIDv7 chosen by whoever made the change; the deduplication key.
    public var id: String
    public var referralId: String
    /// The agency that made the change.
    public var by: String
    public var status: HandoffStatus
    /// Required for `declined` and `cancelled`.
    public var reason: ClosingReason?
    /// Required for `completed`.
    public var outcome: Outcome?
    /// The `UpdateNote` sealed for the other agency of the handoff, if the change has words.
    public var sealed: SealedBody?
    /// The words opened (the adapter's own records and API only).
    public var note: UpdateNote?
    public var at: Date

    public init(
        id: String = MessageID.make(), referralId: String, by: String, status: HandoffStatus,
        reason: ClosingReason? = nil, outcome: Outcome? = nil, sealed: SealedBody? = nil, note: UpdateNote? = nil, at: Date
    ) {
        self.id = id
        self.referralId = referralId
        self.by = by
        self.status = status
        self.reason = reason
        self.outcome = outcome
        self.sealed = sealed
        self.note = note
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case id, by, status, reason, outcome, sealed, note, at
        case referralId = "referral_id"
    }

    /// The bytes the sealed note authenticates besides its words: the whole change, so the note
    /// cannot be moved onto another change (RRP.md section 9.3).
    public var sealedAssociatedData: [UInt8] {
        LengthPrefixedFields.encode([
            "rujuk-update/2", id, referralId, by, status.rawValue, reason?.rawValue ?? "", outcome?.rawValue ?? "", Timestamp.format(at),
        ])
    }

    /// The change as it travels: without the opened note.
    public var wire: HandoffEvent {
        var copy = self
        copy.note = nil
        return copy
    }
}

/// The words that go with a status change, sealed for the other agency of the handoff.
public struct UpdateNote: Codable, Sendable, Equatable {
    /// Why it was declined or cancelled, in words (at most 2,000 characters).
    public var reason: String?
    /// How the service ended, in words (at most 2,000 characters).
    public var outcome: String?

    public init(reason: String? = nil, outcome: String? = nil) {
        self.reason = reason
        self.outcome = outcome
    }

    /// No words at all: nothing to seal.
    public var isEmpty: Bool { (reason ?? "").isEmpty && (outcome ?? "").isEmpty }
}

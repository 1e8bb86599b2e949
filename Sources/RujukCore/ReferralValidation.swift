import Foundation

/// The rules a referral must follow beyond its JSON shape. The JSON Schemas in
/// Protocols/schemas state the same rules for implementers in other languages.
public enum ReferralValidation {
    /// The longest text in words a sealed part holds for a reason, an outcome or notes.
    public static let maxNoteLength = 2000

    /// Checks an agency id: lowercase letters, digits and dashes, 2 to 63 characters.
    public static func isAgencyID(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        guard (2...63).contains(utf8.count), let first = utf8.first, isLowerAlnum(first) else { return false }
        return utf8.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") }
    }

    static func isLowerAlnum(_ char: UInt8) -> Bool {
        (char >= 97 && char <= 122) || (char >= 48 && char <= 57)
    }

    /// Validates the envelope (the sealed part is opaque here); throws `schema_violation`
    /// naming the field.
    public static func validate(_ referral: Referral) throws {
        func fail(_ reason: String) throws -> Never { throw RujukError(.schemaViolation, reason) }
        if !MessageID.isValid(referral.id) { try fail("'id' must be a UUIDv7") }
        let caseRef = Array(referral.caseRef.utf8)
        if caseRef.isEmpty || caseRef.count > 64 || !caseRef.allSatisfy({ isLowerAlnum($0) || ($0 >= 65 && $0 <= 90) || "._/-".utf8.contains($0) }) {
            try fail("'case_ref' must be 1-64 characters of letters, digits and . _ / -")
        }
        if !isAgencyID(referral.from) { try fail("'from' is not an agency id") }
        if !isAgencyID(referral.to) { try fail("'to' is not an agency id") }
        if referral.from == referral.to { try fail("'to' must differ from 'from'") }
        if !isProvinceCode(referral.location.province) {
            try fail("'location.province' must be an ISO 3166-2 code such as ID-KR")
        }
        if let regency = referral.location.regency, !isRegencyCode(regency) {
            try fail("'location.regency' must be a Kemendagri regency code such as 21.71")
        }
        if referral.dueReceive < referral.createdAt || referral.dueRespond < referral.dueReceive
            || referral.dueComplete < referral.dueRespond {
            try fail("deadlines must satisfy created_at <= due_receive <= due_respond <= due_complete")
        }
        let consent = referral.consent
        switch consent.status {
        case .given:
            if consent.scope.isEmpty { try fail("'consent.scope' must name at least one kind of agency") }
            if consent.ground != nil { try fail("'consent.ground' is only for an overridden consent") }
        case .overridden:
            guard let ground = consent.ground else { try fail("'consent.ground' is required when consent is overridden") }
            if ground == .emergency && referral.priority != .emergency {
                try fail("an override on the 'emergency' ground needs priority 'emergency'")
            }
        }
        try validate(referral.sealed)
    }

    /// The number of bytes a padded standard base64 text decodes to, or nil if it is not one.
    /// One pass over the UTF-8 bytes in place: a sealed part is about a kilobyte of it, on
    /// every referral the broker handles.
    static func base64Length(_ text: String) -> Int? {
        var copy = text
        return copy.withUTF8 { bytes -> Int? in
            let count = bytes.count
            guard count > 0, count % 4 == 0 else { return nil }
            var padding = 0
            if bytes[count - 1] == 61 { padding = bytes[count - 2] == 61 ? 2 : 1 }
            // A table and no early exit: the loop has no branch per byte.
            return notBase64.withUnsafeBufferPointer { table -> Int? in
                var outside: UInt8 = 0
                for index in 0..<(count - padding) { outside |= table[Int(bytes[index])] }
                return outside == 0 ? count / 4 * 3 - padding : nil
            }
        }
    }

    /// 1 for each byte outside the standard base64 alphabet (A-Z a-z 0-9 + /), 0 inside it.
    private static let notBase64: [UInt8] = (0...255).map { (char: Int) -> UInt8 in
        let inside = (65...90).contains(char) || (97...122).contains(char) || (48...57).contains(char) || char == 43 || char == 47
        return inside ? 0 : 1
    }

    public static func validate(_ body: ReferralBody) throws {
        func fail(_ reason: String) throws -> Never { throw RujukError(.schemaViolation, reason) }
        let subject = body.subject
        if !Subject.ageBands.contains(subject.ageBand) {
            try fail("'body.subject.age_band' must be one of \(Subject.ageBands.joined(separator: ", "))")
        }
        if !Subject.genders.contains(subject.gender) {
            try fail("'body.subject.gender' must be one of \(Subject.genders.joined(separator: ", "))")
        }
        let nationality = Array(subject.nationality.utf8)
        if nationality.count != 2 || !nationality.allSatisfy({ $0 >= 65 && $0 <= 90 }) {
            try fail("'body.subject.nationality' must be an ISO 3166-1 alpha-2 code")
        }
        if subject.child && !["0-11", "12-17", "unknown"].contains(subject.ageBand) {
            try fail("'body.subject.child' contradicts 'body.subject.age_band'")
        }
        if subject.languages.contains(where: { $0.isEmpty || $0.exceeds(35) }) {
            try fail("'body.subject.languages' must be BCP 47 tags")
        }
        let consent = body.consent
        if consent.recordedBy.isBlank || consent.recordedBy.exceeds(100) { try fail("'body.consent.recorded_by' must be 1-100 characters") }
        switch consent.status {
        case .given:
            if consent.scope.isEmpty { try fail("'body.consent.scope' must name at least one kind of agency") }
            if consent.ground != nil { try fail("'body.consent.ground' is only for an overridden consent") }
        case .overridden:
            guard let ground = consent.ground else { try fail("'body.consent.ground' is required when consent is overridden") }
            if (consent.justification ?? "").isBlank {
                try fail("'body.consent.justification' is required when consent is overridden")
            }
            if ground == .childProtection && !subject.child {
                try fail("an override on the 'child_protection' ground needs a subject who is a child")
            }
        }
        if let notes = body.notes, notes.exceeds(10_000) { try fail("'body.notes' is over 10000 characters") }
        if let reason = body.reason, reason.exceeds(maxNoteLength) { try fail("'body.reason' is over \(maxNoteLength) characters") }
    }

    /// Checks that the sealed record agrees with what the envelope claims about it: the same
    /// status, ground and scope. The sender's adapter writes both from one record; a mismatch is
    /// a faulty or dishonest sender, and the referral is refused (`consent_required`).
    public static func checkAgreement(_ body: ReferralBody, with claim: ConsentClaim) throws {
        let consent = body.consent
        guard consent.status == claim.status, consent.ground == claim.ground, Set(consent.scope) == Set(claim.scope) else {
            throw RujukError(.consentRequired, "the sealed consent record does not match the envelope's consent")
        }
    }

    /// `21.71`: a regency or city of Indonesia by its Kemendagri code, two digits, a dot, two digits.
    public static func isRegencyCode(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        guard utf8.count == 5, utf8[2] == UInt8(ascii: ".") else { return false }
        return [0, 1, 3, 4].allSatisfy { utf8[$0] >= 48 && utf8[$0] <= 57 }
    }

    /// `ID-KR`, `MY-01`: two capital letters, a dash, one to three capitals or digits.
    public static func isProvinceCode(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        guard (4...6).contains(utf8.count), utf8[2] == UInt8(ascii: "-") else { return false }
        return utf8[0..<2].allSatisfy { $0 >= 65 && $0 <= 90 }
            && utf8[3...].allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) }
    }

    /// Validates an update event's shape: ids, agency, and the content its status needs.
    public static func validate(_ event: HandoffEvent) throws {
        if !MessageID.isValid(event.id) { throw RujukError(.schemaViolation, "'id' must be a UUIDv7") }
        if !MessageID.isValid(event.referralId) { throw RujukError(.schemaViolation, "'referral_id' must be a UUIDv7") }
        if !isAgencyID(event.by) { throw RujukError(.schemaViolation, "'by' is not an agency id") }
        if event.note != nil {
            throw RujukError(.schemaViolation, "'note' must not travel in the clear: words go in 'sealed', for the other agency")
        }
        if let sealed = event.sealed { try validate(sealed) }
        try HandoffStateMachine.validate(event)
    }

    /// The words of a status change, as its maker writes them and as the other agency opens them.
    public static func validate(_ note: UpdateNote) throws {
        if let reason = note.reason, reason.exceeds(maxNoteLength) { throw RujukError(.schemaViolation, "'note.reason' is over \(maxNoteLength) characters") }
        if let outcome = note.outcome, outcome.exceeds(maxNoteLength) { throw RujukError(.schemaViolation, "'note.outcome' is over \(maxNoteLength) characters") }
    }

    /// A sealed part's shape (its content is opaque here).
    static func validate(_ sealed: SealedBody) throws {
        func fail(_ reason: String) throws -> Never { throw RujukError(.schemaViolation, reason) }
        if sealed.suite != SealedBody.suiteV1 { try fail("'sealed.suite' must be '\(SealedBody.suiteV1)'") }
        if base64Length(sealed.enc) != 32 { try fail("'sealed.enc' must be 32 bytes in base64") }
        if let seq = sealed.seq, seq < 0 || seq > SealedBody.maxSeq { try fail("'sealed.seq' must be an integer from 0 to \(SealedBody.maxSeq)") }
        guard let length = base64Length(sealed.ct), length > 16 else { try fail("'sealed.ct' must be a ciphertext in base64") }
    }

    /// Validates an escalation's shape: ids, agencies, level, and lists of sane length.
    public static func validate(_ escalation: Escalation) throws {
        func fail(_ reason: String) throws -> Never { throw RujukError(.schemaViolation, reason) }
        if !MessageID.isValid(escalation.id) { try fail("'id' must be a UUIDv7") }
        if !MessageID.isValid(escalation.referralId) { try fail("'referral_id' must be a UUIDv7") }
        if !isAgencyID(escalation.from) { try fail("'from' is not an agency id") }
        if !isAgencyID(escalation.to) { try fail("'to' is not an agency id") }
        if !(1...2).contains(escalation.level) { try fail("'level' must be 1 or 2") }
        if escalation.targets.isEmpty || escalation.targets.count > 20 || Set(escalation.targets).count != escalation.targets.count
            || !escalation.targets.allSatisfy(isAgencyID) {
            try fail("'targets' must hold 1-20 distinct agency ids")
        }
        if escalation.suggestions.count > 20 || !escalation.suggestions.allSatisfy(isAgencyID) {
            try fail("'suggestions' must hold at most 20 agency ids")
        }
        if !isProvinceCode(escalation.province) { try fail("'province' must be an ISO 3166-2 code such as ID-KR") }
    }
}

/// An error with a stable code, a human-readable reason and where it was raised.
///
/// The codes are part of the Rujuk Referral Protocol (Protocols/RRP.md, "Error codes") and of
/// the adapter's HTTP API: agency systems written in other languages act on `code`, people
/// read `reason`. Codes never change meaning once shipped.
public struct RujukError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A stable, machine-readable error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible, Codable {
        private enum Value: String, CaseIterable, Sendable {
            case badFrame = "bad_frame"
            case unknownCommand = "unknown_command"
            case versionUnsupported = "version_unsupported"
            case noSession = "no_session"
            case schemaViolation = "schema_violation"
            case tooLarge = "too_large"
            case unknownAgency = "unknown_agency"
            case serviceNotOffered = "service_not_offered"
            case illegalTransition = "illegal_transition"
            case notParty = "not_party"
            case notFound = "not_found"
            case duplicateConflict = "duplicate_conflict"
            case identityMismatch = "identity_mismatch"
            case unauthorized = "unauthorized"
            case misdirectedHost = "misdirected_host"
            case forbidden = "forbidden"
            case consentRequired = "consent_required"
            case sealInvalid = "seal_invalid"
            case keyUnknown = "key_unknown"
            case storageUnavailable = "storage_unavailable"
            case badParameter = "bad_parameter"
            case rateLimited = "rate_limited"
            case config = "config"
            case `internal` = "internal"
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A frame sequence that is not an RRP message (wrong header, missing frames, not UTF-8 JSON).
        public static let badFrame = Code(.badFrame)
        /// A command name the receiver does not know.
        public static let unknownCommand = Code(.unknownCommand)
        /// No protocol version in common.
        public static let versionUnsupported = Code(.versionUnsupported)
        /// A command other than HELLO from a peer that has no session (e.g. after a broker restart).
        public static let noSession = Code(.noSession)
        /// A body that does not follow the schema: a missing or mistyped field, a bad value.
        public static let schemaViolation = Code(.schemaViolation)
        /// A message over the configured size limit.
        public static let tooLarge = Code(.tooLarge)
        /// An agency id that is not in the registry.
        public static let unknownAgency = Code(.unknownAgency)
        /// A referral for a service the recipient does not offer.
        public static let serviceNotOffered = Code(.serviceNotOffered)
        /// A status change the handoff state machine does not allow from the current state.
        public static let illegalTransition = Code(.illegalTransition)
        /// An update by an agency that is not allowed to make that change on this handoff.
        public static let notParty = Code(.notParty)
        /// No such referral or handoff.
        public static let notFound = Code(.notFound)
        /// A message id already used for a different message.
        public static let duplicateConflict = Code(.duplicateConflict)
        /// A message whose `from` is not the authenticated sender.
        public static let identityMismatch = Code(.identityMismatch)
        /// Missing or wrong credentials.
        public static let unauthorized = Code(.unauthorized)
        /// An HTTP request whose `Host` is not a name this listener answers to: a page from
        /// another site reaching the API through DNS rebinding, or a wrong address.
        public static let misdirectedHost = Code(.misdirectedHost)
        /// An authenticated agency asking for something the registry does not allow it: a
        /// restricted service, legal aid outside an MoU, an escalation to an agency that does
        /// not take escalations.
        public static let forbidden = Code(.forbidden)
        /// A referral without a consent that covers it: consent not given for the recipient's
        /// kind of agency, an override without its ground or justification, or a sealed
        /// record that does not match the envelope.
        public static let consentRequired = Code(.consentRequired)
        /// A sealed part that cannot be opened: tampered with, sealed for another key, or by a
        /// sender other than the one named.
        public static let sealInvalid = Code(.sealInvalid)
        /// An agency with no key in the registry where one is needed (sealing for it, or its
        /// connection).
        public static let keyUnknown = Code(.keyUnknown)
        /// The store cannot accept writes now (disk full, I/O error); retry later.
        public static let storageUnavailable = Code(.storageUnavailable)
        /// An HTTP query parameter that is not what the API takes (a limit that is not a whole
        /// number within the documented maximum, a cursor the API did not give out).
        public static let badParameter = Code(.badParameter)
        /// A session over its message rate (broker `[broker] session_rate`, `session_hello_rate`):
        /// the message was not processed; send it again more slowly.
        public static let rateLimited = Code(.rateLimited)
        /// A configuration file is invalid.
        public static let config = Code(.config)
        /// A fault inside Rujuk.
        public static let `internal` = Code(.internal)

        /// Every code, for the spec test that checks Protocols/RRP.md lists them all.
        public static var all: [Code] { Value.allCases.map(Code.init) }

        /// Looks a code up by its wire name.
        public init?(rawValue: String) {
            guard let value = Value(rawValue: rawValue) else { return nil }
            self.value = value
        }

        public var rawValue: String { value.rawValue }
        public var description: String { value.rawValue }

        public init(from decoder: any Decoder) throws {
            let raw = try decoder.singleValueContainer().decode(String.self)
            self = Code(rawValue: raw) ?? .internal
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(rawValue)
        }
    }

    public let code: Code
    public let reason: String
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.file = file
        self.line = line
    }

    public var description: String { "\(code): \(reason)" }

    public static func == (lhs: RujukError, rhs: RujukError) -> Bool {
        lhs.code == rhs.code && lhs.reason == rhs.reason
    }
}

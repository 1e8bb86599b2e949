import Foundation

/// The commands of the Rujuk Referral Protocol (Protocols/RRP.md, section 3).
public enum RRPCommand: String, CaseIterable, Sendable {
    case hello = "HELLO"
    case ready = "READY"
    case refer = "REFER"
    case update = "UPDATE"
    case commit = "COMMIT"
    case deliver = "DELIVER"
    case receipt = "RECEIPT"
    case error = "ERROR"
    case ping = "PING"
    case pong = "PONG"
    case bye = "BYE"
}

/// HELLO: an adapter opens a session.
public struct Hello: Codable, Sendable, Equatable {
    /// The agency the adapter speaks for. With CURVE the broker ignores it and uses the
    /// authenticated identity; without CURVE (development only) it is taken as said.
    public var agency: String
    /// Protocol versions the adapter speaks.
    public var versions: [Int]
    /// How many DELIVERs may be outstanding (sent, not yet receipted) at once.
    public var credit: Int
    /// How often the adapter will send something; the broker expects traffic at this rhythm.
    public var heartbeatMs: Int
    /// Free-form software name and version, for logs.
    public var software: String?

    public init(agency: String, versions: [Int] = [1], credit: Int, heartbeatMs: Int, software: String? = nil) {
        self.agency = agency
        self.versions = versions
        self.credit = credit
        self.heartbeatMs = heartbeatMs
        self.software = software
    }

    enum CodingKeys: String, CodingKey {
        case agency, versions, credit, software
        case heartbeatMs = "heartbeat_ms"
    }
}

/// READY: the broker accepts a session.
public struct Ready: Codable, Sendable, Equatable {
    public var version: Int
    /// The agency the broker recognised.
    public var agency: String
    /// The heartbeat interval both sides use for this session.
    public var heartbeatMs: Int
    /// The largest message the broker accepts, in bytes.
    public var maxMessageBytes: Int
    /// The credit the broker granted (at most what HELLO asked for).
    public var credit: Int

    public init(version: Int, agency: String, heartbeatMs: Int, maxMessageBytes: Int, credit: Int) {
        self.version = version
        self.agency = agency
        self.heartbeatMs = heartbeatMs
        self.maxMessageBytes = maxMessageBytes
        self.credit = credit
    }

    enum CodingKeys: String, CodingKey {
        case version, agency, credit
        case heartbeatMs = "heartbeat_ms"
        case maxMessageBytes = "max_message_bytes"
    }
}

/// COMMIT: the broker has durably stored these REFER/UPDATE messages (by message id).
public struct Commit: Codable, Sendable, Equatable {
    public var ids: [String]
    public init(ids: [String]) { self.ids = ids }
}

/// RECEIPT: the adapter has durably stored these DELIVERed messages (by message id).
public struct Receipt: Codable, Sendable, Equatable {
    public var ids: [String]
    public init(ids: [String]) { self.ids = ids }
}

/// What a DELIVER carries.
public enum DeliveryKind: String, Codable, Sendable {
    /// A referral for this agency.
    case referral
    /// A status change on a handoff this agency is party to.
    case event
}

/// The first body frame of DELIVER; the second is the message itself, byte for byte as stored.
public struct DeliveryHeader: Codable, Sendable, Equatable {
    public var kind: DeliveryKind
    /// The message id to put in the RECEIPT.
    public var id: String
    /// 1 on first delivery, more on redelivery.
    public var attempt: Int

    public init(kind: DeliveryKind, id: String, attempt: Int) {
        self.kind = kind
        self.id = id
        self.attempt = attempt
    }
}

/// ERROR: a refusal, with a stable code and a reason.
public struct ProtocolError: Codable, Sendable, Equatable {
    public var code: RujukError.Code
    public var reason: String
    /// The message id refused, when the refused message had one that could be read.
    public var id: String?

    public init(code: RujukError.Code, reason: String, id: String? = nil) {
        self.code = code
        self.reason = reason
        self.id = id
    }

    public init(_ error: RujukError, id: String? = nil) {
        self.init(code: error.code, reason: error.reason, id: id)
    }
}

/// One decoded RRP message.
public enum RRPMessage: Sendable, Equatable {
    case hello(Hello)
    case ready(Ready)
    /// A referral, and its body bytes as received: those bytes are what is stored and delivered.
    case refer(Referral, raw: [UInt8])
    /// A status change, and its bytes as received.
    case update(HandoffEvent, raw: [UInt8])
    case commit(Commit)
    /// A delivery and the message's stored bytes, to be decoded according to `header.kind`.
    case deliver(DeliveryHeader, payload: [UInt8])
    case receipt(Receipt)
    case error(ProtocolError)
    case ping
    case pong
    case bye

    public var command: RRPCommand {
        switch self {
        case .hello: .hello
        case .ready: .ready
        case .refer: .refer
        case .update: .update
        case .commit: .commit
        case .deliver: .deliver
        case .receipt: .receipt
        case .error: .error
        case .ping: .ping
        case .pong: .pong
        case .bye: .bye
        }
    }
}

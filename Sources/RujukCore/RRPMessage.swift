import Foundation

/// The commands of the Rujuk Referral Protocol (Protocols/RRP.md, section 3).
public enum RRPCommand: String, CaseIterable, Sendable {
    case hello = "HELLO"
    case ready = "READY"
    case refer = "REFER"
    case update = "UPDATE"
    case escalate = "ESCALATE"
    case commit = "COMMIT"
    case deliver = "DELIVER"
    case receipt = "RECEIPT"
    case error = "ERROR"
    case ping = "PING"
    case pong = "PONG"
    case bye = "BYE"
    case checkpoint = "CHECKPOINT"
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

    public init(agency: String, versions: [Int] = RRPCodec.versions, credit: Int, heartbeatMs: Int, software: String? = nil) {
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
    /// An escalation (or its resolution) of a handoff this agency is told about.
    case escalation
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
    /// An overdue handoff escalated by its sender (or the resolution of one), and its bytes.
    case escalate(Escalation, raw: [UInt8])
    case commit(Commit)
    /// A delivery and the message's stored bytes, to be decoded according to `header.kind`.
    case deliver(DeliveryHeader, payload: [UInt8])
    case receipt(Receipt)
    case error(ProtocolError)
    case ping
    case pong
    case bye
    /// The broker's signed checkpoint of its audit log; one-way, never answered.
    case checkpoint(Checkpoint)

    public var command: RRPCommand {
        switch self {
        case .hello: .hello
        case .ready: .ready
        case .refer: .refer
        case .update: .update
        case .escalate: .escalate
        case .commit: .commit
        case .deliver: .deliver
        case .receipt: .receipt
        case .error: .error
        case .ping: .ping
        case .pong: .pong
        case .bye: .bye
        case .checkpoint: .checkpoint
        }
    }
}

/// ESCALATE: the sender of a handoff tells others that one of its clocks ran out, or that a
/// handoff it escalated is resolved. Envelope fields only: never anything about the person.
public struct Escalation: Codable, Sendable, Equatable {
    public enum Notice: String, Codable, Sendable {
        /// A clock ran out (level 1), or stayed run out (level 2).
        case breach
        /// The handoff met the clock that was escalated, or ended: escalation stops.
        case resolved
    }

    /// UUIDv7 chosen by the escalating adapter; the deduplication key.
    public var id: String
    public var referralId: String
    public var notice: Notice
    /// 1 or 2; for `resolved`, the level that had been reached.
    public var level: Int
    /// Which clock: receive, respond or complete.
    public var clock: Breach
    /// The sending agency, which escalates.
    public var from: String
    /// The recipient that is late.
    public var to: String
    /// The agencies the broker delivers this to.
    public var targets: [String]
    public var service: Service
    public var priority: Priority
    /// The sender's province, for the task forces' view.
    public var province: String
    /// The deadline that passed.
    public var due: Date
    /// The handoff's status when this was sent.
    public var status: HandoffStatus
    /// Other agencies offering the service in the province (legal aid: MoU partners only).
    public var suggestions: [String]
    public var at: Date

    public init(
        id: String = MessageID.make(), referralId: String, notice: Notice, level: Int, clock: Breach, from: String, to: String,
        targets: [String], service: Service, priority: Priority, province: String, due: Date, status: HandoffStatus,
        suggestions: [String], at: Date
    ) {
        self.id = id
        self.referralId = referralId
        self.notice = notice
        self.level = level
        self.clock = clock
        self.from = from
        self.to = to
        self.targets = targets
        self.service = service
        self.priority = priority
        self.province = province
        self.due = due
        self.status = status
        self.suggestions = suggestions
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case id, notice, level, clock, from, to, targets, service, priority, province, due, status, suggestions, at
        case referralId = "referral_id"
    }
}

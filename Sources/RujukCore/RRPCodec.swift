import Foundation

/// Turns RRP frames into messages and back (Protocols/RRP.md, section 2).
///
/// Every message is `[header, command, body...]`: the header frame is the ASCII string
/// `RRP/2`, the command frame one of `RRPCommand`, and the body frames UTF-8 JSON. On a ROUTER
/// socket the peer's routing id comes before these frames and is not the codec's business.
public enum RRPCodec {
    /// The header frame of protocol major version 2.
    public static let header: [UInt8] = Array("RRP/2".utf8)
    /// The protocol versions this implementation speaks in HELLO/READY.
    public static let versions = [2]
    /// The default limit on the bytes of one message, all frames together.
    public static let defaultMaxMessageBytes = 256 * 1024

    /// Encodes a message into frames.
    public static func encode(_ message: RRPMessage) -> [[UInt8]] {
        let command = Array(message.command.rawValue.utf8)
        switch message {
        case .hello(let body): return [header, command, JSONCoding.encode(body)]
        case .ready(let body): return [header, command, JSONCoding.encode(body)]
        case .refer(_, let raw): return [header, command, raw]
        case .update(_, let raw): return [header, command, raw]
        case .escalate(_, let raw): return [header, command, raw]
        case .commit(let body): return [header, command, JSONCoding.encode(body)]
        case .deliver(let head, let payload): return [header, command, JSONCoding.encode(head), payload]
        case .receipt(let body): return [header, command, JSONCoding.encode(body)]
        case .error(let body): return [header, command, JSONCoding.encode(body)]
        case .checkpoint(let body): return [header, command, JSONCoding.encode(body)]
        case .ping, .pong, .bye: return [header, command]
        }
    }

    /// A REFER for a referral, encoding it once.
    public static func refer(_ referral: Referral) -> RRPMessage {
        .refer(referral, raw: JSONCoding.encode(referral))
    }

    /// An UPDATE for an event, encoding it once.
    public static func update(_ event: HandoffEvent) -> RRPMessage {
        .update(event, raw: JSONCoding.encode(event))
    }

    /// An ESCALATE for an escalation, encoding it once.
    public static func escalate(_ escalation: Escalation) -> RRPMessage {
        .escalate(escalation, raw: JSONCoding.encode(escalation))
    }

    /// Decodes and validates frames.
    ///
    /// The size limit is checked before any JSON is parsed, and a body nested deeper than
    /// `JSONParser.maxDepth` is refused before it is parsed in full (`JSONCoding.decode`).
    /// Throws `bad_frame`, `unknown_command`, `too_large` or `schema_violation`; the error's
    /// reason never quotes a field's value.
    public static func decode(_ frames: [[UInt8]], maxMessageBytes: Int = defaultMaxMessageBytes) throws -> RRPMessage {
        let total = frames.reduce(0) { $0 + $1.count }
        if total > maxMessageBytes {
            throw RujukError(.tooLarge, "message is \(total) bytes; the limit is \(maxMessageBytes)")
        }
        guard frames.count >= 2 else {
            throw RujukError(.badFrame, "an RRP message has at least 2 frames (header, command); got \(frames.count)")
        }
        guard frames[0] == header else {
            if frames[0].starts(with: Array("RRP/".utf8)) {
                throw RujukError(.versionUnsupported, "header frame names a protocol version this peer does not speak; expected RRP/2")
            }
            throw RujukError(.badFrame, "the first frame must be the header 'RRP/2'")
        }
        guard let name = String(validating: frames[1], as: UTF8.self), let command = RRPCommand(rawValue: name) else {
            let shown = frames[1].count <= 16 ? String(decoding: frames[1].filter { $0 >= 32 && $0 < 127 }, as: UTF8.self) : "…"
            throw RujukError(.unknownCommand, "unknown command '\(shown)'")
        }
        let body = Array(frames.dropFirst(2))
        func one(_ what: String) throws -> [UInt8] {
            guard body.count == 1 else {
                throw RujukError(.badFrame, "\(command.rawValue) has exactly 1 body frame (\(what)); got \(body.count)")
            }
            return body[0]
        }
        switch command {
        case .hello:
            let hello = try JSONCoding.decode(Hello.self, from: one("hello"), what: "HELLO")
            guard ReferralValidation.isAgencyID(hello.agency) else { throw RujukError(.schemaViolation, "HELLO: 'agency' is not an agency id") }
            guard hello.credit >= 1, hello.credit <= 100_000 else { throw RujukError(.schemaViolation, "HELLO: 'credit' must be 1-100000") }
            guard hello.heartbeatMs >= 100, hello.heartbeatMs <= 600_000 else { throw RujukError(.schemaViolation, "HELLO: 'heartbeat_ms' must be 100-600000") }
            return .hello(hello)
        case .ready:
            return .ready(try JSONCoding.decode(Ready.self, from: one("ready"), what: "READY"))
        case .refer:
            let raw = try one("referral")
            let referral = try JSONCoding.decode(Referral.self, from: raw, what: "REFER")
            try ReferralValidation.validate(referral)
            return .refer(referral, raw: raw)
        case .update:
            let raw = try one("event")
            let event = try JSONCoding.decode(HandoffEvent.self, from: raw, what: "UPDATE")
            try ReferralValidation.validate(event)
            return .update(event, raw: raw)
        case .escalate:
            let raw = try one("escalation")
            let escalation = try JSONCoding.decode(Escalation.self, from: raw, what: "ESCALATE")
            try ReferralValidation.validate(escalation)
            return .escalate(escalation, raw: raw)
        case .commit:
            let commit = try JSONCoding.decode(Commit.self, from: one("ids"), what: "COMMIT")
            return .commit(commit)
        case .deliver:
            guard body.count == 2 else {
                throw RujukError(.badFrame, "DELIVER has exactly 2 body frames (header, message); got \(body.count)")
            }
            let head = try JSONCoding.decode(DeliveryHeader.self, from: body[0], what: "DELIVER")
            return .deliver(head, payload: body[1])
        case .receipt:
            let receipt = try JSONCoding.decode(Receipt.self, from: one("ids"), what: "RECEIPT")
            guard !receipt.ids.isEmpty, receipt.ids.count <= 100_000 else {
                throw RujukError(.schemaViolation, "RECEIPT: 'ids' must hold 1-100000 ids")
            }
            return .receipt(receipt)
        case .error:
            return .error(try JSONCoding.decode(ProtocolError.self, from: one("error"), what: "ERROR"))
        case .checkpoint:
            let checkpoint = try JSONCoding.decode(Checkpoint.self, from: one("checkpoint"), what: "CHECKPOINT")
            try checkpoint.validate()
            return .checkpoint(checkpoint)
        case .ping, .pong, .bye:
            guard body.isEmpty else {
                throw RujukError(.badFrame, "\(command.rawValue) has no body frames; got \(body.count)")
            }
            return command == .ping ? .ping : command == .pong ? .pong : .bye
        }
    }

    /// The message id a refused message carried, if its body can be read that far; used to
    /// put `id` in the ERROR so the sender knows which message was refused.
    public static func messageID(in frames: [[UInt8]]) -> String? {
        guard frames.count >= 3, frames[2].count <= defaultMaxMessageBytes else { return nil }
        struct OnlyID: Decodable { var id: String? }
        // Through `JSONCoding.decode`, so a body refused for its nesting is not parsed here either.
        let id = (try? JSONCoding.decode(OnlyID.self, from: frames[2], what: "id"))?.id
        return id.flatMap { MessageID.isValid($0) ? $0 : nil }
    }
}

import RujukCore

/// What one fuzz input exercises, and the properties that must hold for every input.
///
/// The decoder faces bytes from any peer that can reach the broker's ROUTER socket. For every
/// input it must either give a message or throw a `RujukError` with one of the codec's codes;
/// anything else (a trap, another error type, a hang, memory without bound) is a finding. A
/// message it gives must survive encoding: the broker and the adapters send what they decode.
/// The plaintext of a sealed body, which a recipient's adapter decodes, is held to the same.
enum DecoderProbe {
    /// The codes RRP.md (section 11) says the codec itself produces.
    static let codecCodes: Set<RujukError.Code> = [.badFrame, .unknownCommand, .versionUnsupported, .tooLarge, .schemaViolation]

    static func run(_ input: [UInt8]) {
        let frames = FuzzInput.frames(input)
        if frames.count == 1 { checkSealedBody(frames[0]) }
        let message: RRPMessage
        do {
            message = try RRPCodec.decode(frames)
        } catch let error as RujukError {
            guard codecCodes.contains(error.code) else { fatalError("decode refused with \(error.code), which is not a codec code: \(error)") }
            // What the broker does next with a refused message: look for an id to name in the ERROR.
            _ = RRPCodec.messageID(in: frames)
            return
        } catch {
            fatalError("decode threw \(type(of: error)), not a RujukError: \(error)")
        }
        checkRoundTrip(message)
    }

    /// What the recipient's adapter does with an opened seal: decode and validate the body.
    static func checkSealedBody(_ plaintext: [UInt8]) {
        do {
            let body = try JSONCoding.decode(ReferralBody.self, from: plaintext, what: "the sealed part")
            try ReferralValidation.validate(body)
            checkStable(body, "the sealed part")
        } catch let error as RujukError {
            guard error.code == .schemaViolation else { fatalError("the sealed part was refused with \(error.code): \(error)") }
        } catch {
            fatalError("the sealed part threw \(type(of: error)), not a RujukError: \(error)")
        }
    }

    /// A decoded message encodes to frames that decode to the same message; for the bodies kept
    /// as received, the values re-encoded by the fast writer decode back to what they encode.
    static func checkRoundTrip(_ message: RRPMessage) {
        let again: RRPMessage
        do {
            again = try RRPCodec.decode(RRPCodec.encode(message), maxMessageBytes: .max)
        } catch {
            fatalError("a decoded \(message.command.rawValue) did not decode after encoding: \(error)")
        }
        guard again == message else { fatalError("a decoded \(message.command.rawValue) changed through encoding") }
        switch message {
        case .refer(let referral, _): checkStable(referral, "REFER")
        case .update(let event, _): checkStable(event, "UPDATE")
        case .escalate(let escalation, _): checkStable(escalation, "ESCALATE")
        default: break
        }
    }

    /// Encoding, decoding and encoding again gives the same bytes (instants travel at
    /// millisecond precision, so the value itself may change on the first encoding).
    static func checkStable<T: Codable>(_ value: T, _ what: String) {
        let bytes = JSONCoding.encode(value)
        do {
            let back = try JSONCoding.decode(T.self, from: bytes, what: what)
            guard JSONCoding.encode(back) == bytes else { fatalError("\(what): encoding is not stable") }
        } catch {
            fatalError("\(what): a decoded body did not decode after encoding: \(error)")
        }
    }
}

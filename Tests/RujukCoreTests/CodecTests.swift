import Foundation
import Testing
@testable import RujukCore

/// Runs the codec over every example in Protocols/examples and checks its verdict.
@Suite(.timeLimit(.minutes(5))) struct ProtocolExampleTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func examples() -> [URL] {
        let base = root.appendingPathComponent("Protocols/examples")
        let files = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL } ?? []
        return files.filter { $0.pathExtension == "json" && !$0.path.contains("/sealed/") }.sorted { $0.path < $1.path }
    }

    /// Examples of the sealed part (what the recipient's adapter opens): Protocols/examples/sealed.
    static func sealedExamples() -> [URL] {
        let base = root.appendingPathComponent("Protocols/examples/sealed")
        let files = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL } ?? []
        return files.filter { $0.pathExtension == "json" }.sorted { $0.path < $1.path }
    }

    @Test(arguments: sealedExamples())
    func sealedPartGivesTheExpectedVerdict(_ file: URL) throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        let expect = try #require(object["expect"] as? String)
        let body = try JSONSerialization.data(withJSONObject: try #require(object["body"]), options: [.sortedKeys])
        do {
            try ReferralValidation.validate(JSONCoding.decode(ReferralBody.self, from: [UInt8](body), what: "sealed part"))
            #expect(expect == "ok", "\(file.lastPathComponent) is valid but should fail with \(expect)")
        } catch let error as RujukError {
            #expect(expect == error.code.rawValue, "\(file.lastPathComponent): got \(error.code) (\(error.reason))")
        }
    }

    @Test func thereAreValidAndInvalidExamples() {
        let all = Self.examples()
        #expect(all.contains { $0.path.contains("/valid/") })
        #expect(all.contains { $0.path.contains("/invalid/") })
        #expect(Self.sealedExamples().count >= 10)
    }

    @Test(arguments: examples())
    func codecGivesTheExpectedVerdict(_ file: URL) throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        let expect = try #require(object["expect"] as? String)
        let frames: [[UInt8]] = try (object["frames"] as? [Any] ?? []).map { frame in
            if let text = frame as? String { return Array(text.utf8) }
            return Array(try JSONSerialization.data(withJSONObject: frame, options: [.sortedKeys, .withoutEscapingSlashes]))
        }
        let limit = object["max_message_bytes"] as? Int ?? RRPCodec.defaultMaxMessageBytes
        do {
            let message = try RRPCodec.decode(frames, maxMessageBytes: limit)
            #expect(expect == "ok", "\(file.lastPathComponent) decoded as \(message.command.rawValue) but should fail with \(expect)")
        } catch let error as RujukError {
            #expect(expect == error.code.rawValue, "\(file.lastPathComponent): got \(error.code) (\(error.reason))")
        }
    }

    @Test func everyErrorCodeIsInTheSpec() throws {
        let spec = try String(contentsOf: Self.root.appendingPathComponent("Protocols/RRP.md"), encoding: .utf8)
        let schema = try String(contentsOf: Self.root.appendingPathComponent("Protocols/schemas/error.schema.json"), encoding: .utf8)
        for code in RujukError.Code.all {
            #expect(spec.contains("`\(code.rawValue)`"), "Protocols/RRP.md does not list \(code.rawValue)")
            #expect(schema.contains("\"\(code.rawValue)\""), "error.schema.json does not list \(code.rawValue)")
        }
    }

    @Test func encodeThenDecodeGivesTheSameMessage() throws {
        let referral = Fixtures.referral()
        let refer = RRPCodec.refer(referral)
        #expect(try RRPCodec.decode(RRPCodec.encode(refer)) == refer)
        let deliver = RRPMessage.deliver(DeliveryHeader(kind: .referral, id: referral.id, attempt: 2), payload: JSONCoding.encode(referral))
        #expect(try RRPCodec.decode(RRPCodec.encode(deliver)) == deliver)
        for message in [RRPMessage.ping, .pong, .bye, .commit(Commit(ids: [referral.id])), .receipt(Receipt(ids: [referral.id]))] {
            #expect(try RRPCodec.decode(RRPCodec.encode(message)) == message)
        }
    }

    @Test func theSealBindsEveryEnvelopeField() {
        let referral = Fixtures.referral()
        let edits: [(String, (inout Referral) -> Void)] = [
            ("id", { $0.id = MessageID.make() }), ("case_ref", { $0.caseRef = "OTHER" }), ("from", { $0.from = "lpsk" }),
            ("to", { $0.to = "lpsk" }), ("service", { $0.service = .shelter }), ("priority", { $0.priority = .routine }),
            ("province", { $0.location.province = "ID-JK" }), ("regency", { $0.location.regency = "21.72" }),
            ("reason", { $0.reason = .other }), ("created_at", { $0.createdAt += 0.001 }), ("due_receive", { $0.dueReceive += 1 }),
            ("due_respond", { $0.dueRespond += 1 }), ("due_complete", { $0.dueComplete += 1 }),
            ("consent.status", { $0.consent = ConsentClaim(status: .overridden, scope: [.health], ground: .emergency) }),
            ("consent.scope", { $0.consent.scope = [.health, .shelter] }),
        ]
        for (field, edit) in edits {
            var changed = referral
            edit(&changed)
            #expect(changed.sealedAssociatedData != referral.sealedAssociatedData, "\(field) is bound")
        }
        var reordered = referral
        reordered.consent.scope = [.shelter, .health]
        var sorted = referral
        sorted.consent.scope = [.health, .shelter]
        #expect(reordered.sealedAssociatedData == sorted.sealedAssociatedData, "the scope is a set")
        // Text moved from one field to the next changes the bytes (fields are length-prefixed).
        #expect(LengthPrefixedFields.encode(["21.71\nlost", "x"]) != LengthPrefixedFields.encode(["21.71", "lost\nx"]))
        var noRegency = referral
        noRegency.location.regency = nil
        #expect(noRegency.sealedAssociatedData != referral.sealedAssociatedData, "an absent regency is bound too")
    }

    @Test func base64IsMeasuredExactly() {
        for length in 0...70 {
            let bytes = Data((0..<length).map { UInt8(truncatingIfNeeded: $0 * 37) })
            #expect(ReferralValidation.base64Length(bytes.base64EncodedString()) == (length == 0 ? nil : length), "\(length) bytes")
        }
        for bad in ["", "abc", "ab=c", "a===", "=abc", "ab c", "abc\u{e9}", "abcd====", "ab-_"] {
            #expect(ReferralValidation.base64Length(bad) == nil, "\(bad)")
        }
    }

    @Test func sizeIsCheckedBeforeParsing() {
        let frames = [RRPCodec.header, Array("REFER".utf8), [UInt8](repeating: UInt8(ascii: "{"), count: 300_000)]
        #expect(throws: RujukError(.tooLarge, "message is 300010 bytes; the limit is 262144")) { try RRPCodec.decode(frames) }
    }

    @Test func timestampsRoundTripAtMillisecondPrecision() throws {
        for seconds in [0.0, 1_795_000_000.123, 951_782_400.5, 4_102_444_799.999] {
            let date = Date(timeIntervalSince1970: seconds)
            let text = Timestamp.format(date)
            let back = try #require(Timestamp.parse(text))
            #expect(abs(back.timeIntervalSince1970 - seconds) < 0.001, "\(text)")
        }
        #expect(Timestamp.format(Date(timeIntervalSince1970: 951_782_400)) == "2000-02-29T00:00:00.000Z")
        #expect(Timestamp.parse("2026-11-23T16:30:00.000+07:00") == Timestamp.parse("2026-11-23T09:30:00.000Z"))
        #expect(Timestamp.parse("2026-13-01T00:00:00Z") == nil)
        #expect(Timestamp.parse("2026-02-31T00:00:00Z") == nil, "no 31 February")
        #expect(Timestamp.parse("2025-02-29T00:00:00Z") == nil, "2025 is not a leap year")
        #expect(Timestamp.parse("2100-02-29T00:00:00Z") == nil, "2100 is not a leap year")
        #expect(Timestamp.parse("2028-02-29T00:00:00Z") != nil)
        #expect(Timestamp.parse("2026-11-23T09:30:00+99:99") == nil, "offsets are at most 23:59")
        #expect(Timestamp.parse("2026-04-31T00:00:00Z") == nil)
    }

    @Test func messageIDsAreUUIDv7() {
        let id = MessageID.make()
        #expect(MessageID.isValid(id))
        #expect(!MessageID.isValid("550e8400-e29b-41d4-a716-446655440000"))
        #expect(MessageID.make(at: Date(timeIntervalSince1970: 1)) < MessageID.make(at: Date(timeIntervalSince1970: 2)))
    }
}

enum Fixtures {
    /// A referral envelope with a stand-in sealed part (well-formed base64 of the right sizes;
    /// the core never opens it).
    static func referral(from: String = "polda-kepri", to: String = "rsud-embung-fatimah") -> Referral {
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        return Referral(
            caseRef: "KR-BTM-2026-0041", from: from, to: to, service: .medicalCare, priority: .urgent,
            location: Location(province: "ID-KR", regency: "21.71"), reason: .medicalExamination,
            createdAt: now, dueReceive: now + 3600, dueRespond: now + 4 * 3600, dueComplete: now + 7 * 86400,
            consent: ConsentClaim(status: .given, scope: [.health]),
            sealed: SealedBody(enc: Data(repeating: 7, count: 32).base64EncodedString(), ct: Data(repeating: 9, count: 80).base64EncodedString()))
    }

    /// The personal part such a referral would carry, sealed.
    static func body(name: String = "Siti Contoh") -> ReferralBody {
        ReferralBody(
            subject: Subject(ageBand: "18-24", gender: "female", nationality: "ID", languages: ["id"], child: false, needs: [], name: name),
            consent: Consent(status: .given, scope: [.health], date: Date(timeIntervalSince1970: 1_795_000_000), recordedBy: "bripka-0412"))
    }
}

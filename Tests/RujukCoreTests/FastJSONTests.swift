import Foundation
import Testing
@testable import RujukCore

/// The hand-written JSON path must agree with `Codable`: where it decodes, it gives the same
/// value; where it writes, it gives the same bytes.
@Suite(.timeLimit(.minutes(5))) struct FastJSONTests {
    /// A deterministic generator, so a failure can be replayed.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Checks one body against one type: fast ⊆ Codable, and equal values.
    @discardableResult
    func agree<T: FastJSONDecodable & Equatable>(_ type: T.Type, _ bytes: [UInt8], _ label: String) -> T? {
        let fast = try? T(fastJSON: JSONFields(parsing: bytes))
        let codable = try? JSONCoding.decoder().decode(T.self, from: Data(bytes))
        if let fast {
            #expect(codable == fast, "\(label): the fast path decoded \(T.self) where Codable gave \(String(describing: codable))")
        }
        return fast
    }

    func bodies() throws -> [(command: String, body: [UInt8], valid: Bool, label: String)] {
        try ProtocolExampleTests.examples().compactMap { file in
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any] ?? [:]
            let frames = object["frames"] as? [Any] ?? []
            guard frames.count >= 3, let command = frames[1] as? String else { return nil }
            let last = frames[frames.count - 1]
            let body: [UInt8] = if let text = last as? String { Array(text.utf8) } else {
                Array(try JSONSerialization.data(withJSONObject: last, options: [.sortedKeys, .withoutEscapingSlashes]))
            }
            return (command, body, object["expect"] as? String == "ok", file.lastPathComponent)
        }
    }

    @Test func everyExampleBodyDecodesAlikeOnBothPaths() throws {
        var fastHits = 0
        for (command, body, valid, label) in try bodies() {
            let referral = agree(Referral.self, body, label)
            let event = agree(HandoffEvent.self, body, label)
            agree(Receipt.self, body, label)
            agree(Commit.self, body, label)
            agree(DeliveryHeader.self, body, label)
            if valid, command == "REFER" { #expect(referral != nil, "\(label): the fast path should read a valid referral"); fastHits += 1 }
            if valid, command == "UPDATE" { #expect(event != nil, "\(label): the fast path should read a valid event"); fastHits += 1 }
        }
        #expect(fastHits >= 2)
    }

    @Test func mutatedBodiesNeverMakeThePathsDisagree() throws {
        var random = SplitMix(state: 20261123)
        let seeds = try bodies().map(\.body) + [JSONCoding.encode(Fixtures.referral())]
        let alphabet = Array("{}[]\":,\\ 0123456789-.eEtrufalsn\u{1}abc\u{e9}".utf8)
        for round in 0..<3000 {
            var bytes = seeds[Int(random.next() % UInt64(seeds.count))]
            for _ in 0..<(1 + Int(random.next() % 3)) where !bytes.isEmpty {
                let at = Int(random.next() % UInt64(bytes.count))
                switch random.next() % 3 {
                case 0: bytes.remove(at: at)
                case 1: bytes.insert(alphabet[Int(random.next() % UInt64(alphabet.count))], at: at)
                default: bytes[at] = alphabet[Int(random.next() % UInt64(alphabet.count))]
                }
            }
            agree(Referral.self, bytes, "mutation \(round)")
            agree(HandoffEvent.self, bytes, "mutation \(round)")
            agree(DeliveryHeader.self, bytes, "mutation \(round)")
        }
    }

    func randomText(_ random: inout SplitMix) -> String {
        let pieces = ["a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\r", "\u{8}", "\u{c}", "\u{0}", "\u{1f}", "\u{7f}", "é", "ñ", "中", "😀", "\u{2028}", "<", "&"]
        return (0..<Int(random.next() % 12)).map { _ in pieces[Int(random.next() % UInt64(pieces.count))] }.joined()
    }

    @Test func randomValuesEncodeToTheSameBytesAndDecodeBack() throws {
        var random = SplitMix(state: 7)
        let encoder = JSONCoding.encoder()
        for _ in 0..<300 {
            var referral = Fixtures.referral()
            referral.reason = ReferralReason.allCases[Int(random.next() % UInt64(ReferralReason.allCases.count))]
            referral.caseRef = randomText(&random)
            referral.location.regency = random.next() % 2 == 0 ? nil : randomText(&random)
            referral.createdAt = Date(timeIntervalSince1970: Double(random.next() % 4_000_000_000_000) / 1000)
            referral.sealed.ct = randomText(&random)
            if random.next() % 2 == 0 { referral.consent = ConsentClaim(status: .overridden, scope: [], ground: .childProtection) }
            var body = Fixtures.body()
            body.notes = random.next() % 2 == 0 ? nil : randomText(&random)
            body.reason = random.next() % 2 == 0 ? nil : randomText(&random)
            body.subject.name = random.next() % 2 == 0 ? nil : randomText(&random)
            body.subject.languages = (0..<Int(random.next() % 3)).map { _ in randomText(&random) }
            body.consent.justification = random.next() % 2 == 0 ? nil : randomText(&random)
            body.consent.ground = random.next() % 2 == 0 ? nil : .emergency
            let plain = JSONCoding.encode(body)
            #expect(plain == Array(try encoder.encode(body)), "\(String(decoding: plain, as: UTF8.self))")
            #expect(try ReferralBody(fastJSON: JSONFields(parsing: plain)) == JSONCoding.decoder().decode(ReferralBody.self, from: Data(plain)))
            let fast = JSONCoding.encode(referral)
            #expect(fast == Array(try encoder.encode(referral)), "\(String(decoding: fast, as: UTF8.self))")
            // Instants travel at millisecond precision, so compare with what Codable reads back.
            #expect(try Referral(fastJSON: JSONFields(parsing: fast)) == JSONCoding.decoder().decode(Referral.self, from: Data(fast)))

            let note = UpdateNote(reason: random.next() % 2 == 0 ? nil : randomText(&random), outcome: random.next() % 2 == 0 ? nil : randomText(&random))
            let event = HandoffEvent(referralId: referral.id, by: "polda-kepri", status: .declined, reason: .other,
                                     outcome: random.next() % 2 == 0 ? nil : .transferred,
                                     sealed: random.next() % 2 == 0 ? nil : referral.sealed, note: random.next() % 2 == 0 ? nil : note, at: referral.createdAt)
            #expect(JSONCoding.encode(event) == Array(try encoder.encode(event)))
            let eventBytes = JSONCoding.encode(event)
            #expect(try HandoffEvent(fastJSON: JSONFields(parsing: eventBytes)) == JSONCoding.decoder().decode(HandoffEvent.self, from: Data(eventBytes)))
        }
        let view = HandoffView(
            id: "x", caseRef: "c", from: "a", to: "b", service: .shelter, priority: .urgent, location: Location(province: "ID-KR", regency: "Batam"),
            reason: nil, status: .received, createdAt: Date(), dueReceive: Date(), dueRespond: Date(), dueComplete: Date(), updatedAt: Date(),
            overdue: .respond, history: [HandoffEvent(referralId: "x", by: "a", status: .requested, at: Date())], body: Fixtures.body(),
            direction: "inbound", delivery: nil)
        #expect(JSONCoding.encode(view) == Array(try encoder.encode(view)))
        for error in [ProtocolError(code: .notFound, reason: "no \"such\" thing", id: "i"), ProtocolError(code: .internal, reason: "")] {
            #expect(JSONCoding.encode(error) == Array(try encoder.encode(error)))
        }
        for event in [
            FeedEvent(seq: 7, kind: .transition, referralId: "r", messageId: "m", status: .received, by: "a", from: "a", to: "b",
                      service: .shelter, priority: .urgent, province: "ID-KR", at: Date(timeIntervalSince1970: 1_795_000_000.5)),
            FeedEvent(seq: 8, kind: .escalation, referralId: "r", messageId: "e", status: .requested, by: "a", from: "a", to: "b",
                      service: .shelter, priority: .urgent, province: "ID-KR", overdue: .receive, level: 2, notice: .breach, clock: .receive,
                      targets: ["t1", "t2"], at: Date(timeIntervalSince1970: 1_795_000_000.5)),
            FeedEvent(seq: 9, kind: .transition, referralId: "r", messageId: "m", status: .requested, by: "a", from: "a", to: "b",
                      service: .shelter, priority: .emergency, province: "ID-KR", consentOverride: true, at: Date(timeIntervalSince1970: 1_795_000_000.5)),
        ] {
            #expect(JSONCoding.encode(event) == Array(try encoder.encode(event)))
            #expect(try FeedEvent(fastJSON: JSONFields(parsing: JSONCoding.encode(event))) == event)
            let message = FeedMessage(topic: "agency/a", prev: -1, event: event)
            #expect(JSONCoding.encode(message) == Array(try encoder.encode(message)))
        }
        let header = DeliveryHeader(kind: .event, id: "x", attempt: 12)
        #expect(JSONCoding.encode(header) == Array(try encoder.encode(header)))
    }

    /// The reader scans a string eight bytes at a time: a byte that needs a look (a quote, an
    /// escape, a control character, anything outside ASCII) must be seen wherever in a word it
    /// falls, and so must the closing quote, and a string's end that never comes.
    @Test func aByteThatNeedsALookIsSeenAtEveryOffset() throws {
        let specials: [(raw: [UInt8], decoded: String?)] = [
            (Array(#"\""#.utf8), "\""), (Array(#"\\"#.utf8), "\\"), (Array(#"\n"#.utf8), "\n"), (Array(#"\u00e9"#.utf8), "é"),
            (Array("é".utf8), "é"), (Array("😀".utf8), "😀"), ([0x7F], "\u{7F}"), ([0x20], " "),
            ([0x1F], nil), ([0x0A], nil), ([0x00], nil), ([0xFF], nil), ([0xC3], nil),
        ]
        for length in [0, 1, 6, 7, 8, 9, 15, 16, 17, 23, 24, 25, 40] {
            for at in 0...length {
                let before = String(repeating: "a", count: at), after = String(repeating: "b", count: length - at)
                for special in specials {
                    let bytes = Array(#"{"province":""#.utf8) + Array(before.utf8) + special.raw + Array(after.utf8) + Array(#"","regency":"r"}"#.utf8)
                    let fast = try? Location(fastJSON: JSONFields(parsing: bytes))
                    if let decoded = special.decoded {
                        #expect(fast == Location(province: before + decoded + after, regency: "r"), "\(length) \(at) \(special.raw)")
                    } else {
                        #expect(fast == nil, "\(length) \(at) \(special.raw)")
                    }
                    agree(Location.self, bytes, "\(length) \(at) \(special.raw)")
                }
                let plain = before + after
                #expect(try Location(fastJSON: JSONFields(parsing: Array(#"{"province":"\#(plain)","regency":"r"}"#.utf8))).province == plain)
                #expect(throws: FastJSONMiss.self) { try JSONParser.parse(Array(#"{"province":"\#(plain)"#.utf8)) }
            }
        }
    }

    /// The writer scans a string eight bytes at a time too: a byte to escape (or outside ASCII,
    /// kept as it is) is written as Codable writes it wherever in a word it falls; instants are
    /// written straight into the bytes, in `Timestamp`'s form, for any year.
    @Test func theWriterEscapesAByteAtEveryOffset() throws {
        let encoder = JSONCoding.encoder()
        let specials = ["\"", "\\", "\n", "\t", "\u{01}", "\u{1F}", "\u{7F}", "é", "😀", "/", " "]
        for length in [0, 1, 6, 7, 8, 9, 15, 16, 17, 23, 24, 25, 40] {
            for at in 0...length {
                let before = String(repeating: "a", count: at), after = String(repeating: "b", count: length - at)
                for special in specials + specials.map({ $0 + $0 }) {
                    let location = Location(province: before + special + after, regency: before + after)
                    #expect(JSONCoding.encode(location) == Array(try encoder.encode(location)), "\(length) \(at) \(Array(special.utf8))")
                }
            }
        }
        for seconds in [0, 1_795_000_000.123, -1, -62_167_219_200, 253_402_300_799.999, -62_167_219_201, 253_402_300_800] {
            let event = HandoffEvent(referralId: "r", by: "a", status: .received, at: Date(timeIntervalSince1970: seconds))
            #expect(JSONCoding.encode(event) == Array(#"{"at":"\#(Timestamp.format(event.at))","by":"a","id":"\#(event.id)","referral_id":"r","status":"received"}"#.utf8))
        }
    }

    @Test func deepNestingIsLeftToTheCheckedPath() {
        let deep = Array(String(repeating: "[", count: 10_000).utf8)
        #expect(throws: FastJSONMiss.self) { try JSONParser.parse(deep) }
        let fine = Array((String(repeating: "[", count: 31) + String(repeating: "]", count: 31)).utf8)
        #expect(throws: Never.self) { try JSONParser.parse(fine) }
    }
}

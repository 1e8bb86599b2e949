import Foundation
import Testing
@testable import RujukCore

/// The decoder under hostile input, deterministic and quick enough for every test run: every file
/// of Fuzz/corpus and every protocol example, then seeded mutations of them. `make fuzz` holds the
/// same properties over millions of inputs under libFuzzer (Sources/RujukFuzz/DecoderProbe.swift).
@Suite(.timeLimit(.minutes(5))) struct FuzzTests {
    typealias SplitMix = FastJSONTests.SplitMix

    static let corpus = ProtocolExampleTests.root.appendingPathComponent("Fuzz/corpus")
    /// The codes RRP.md (section 11) says the codec itself produces.
    static let codecCodes: Set<RujukError.Code> = [.badFrame, .unknownCommand, .versionUnsupported, .tooLarge, .schemaViolation]

    /// A corpus file's frames: split at 0xFF, as the fuzz target splits them (Sources/RujukFuzz/FuzzInput.swift).
    static func frames(_ input: [UInt8]) -> [[UInt8]] {
        input.split(separator: 0xFF, omittingEmptySubsequences: false).map { Array($0) }
    }

    static func corpusFiles() -> [URL] {
        let files = (try? FileManager.default.contentsOfDirectory(at: corpus, includingPropertiesForKeys: nil)) ?? []
        return files.filter { $0.pathExtension == "rrp" }.sorted { $0.path < $1.path }
    }

    /// Every corpus input and every example, as frames; the examples are read directly so that
    /// the test follows them even before the corpus is regenerated.
    static func seeds() throws -> [(label: String, frames: [[UInt8]])] {
        let corpus = try corpusFiles().map { ($0.lastPathComponent, frames(Array(try Data(contentsOf: $0)))) }
        let examples = try ProtocolExampleTests.examples().map { file in
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any] ?? [:]
            let frames: [[UInt8]] = try (object["frames"] as? [Any] ?? []).map { frame in
                if let text = frame as? String { return Array(text.utf8) }
                return Array(try JSONSerialization.data(withJSONObject: frame, options: [.sortedKeys, .withoutEscapingSlashes]))
            }
            return (file.lastPathComponent, frames)
        }
        return corpus + examples
    }

    /// What must hold for any input: the decoder gives a message or a codec error, and a message
    /// it gives decodes to itself after encoding. A one-frame input is also read as the plaintext
    /// of a sealed body, as the recipient's adapter reads it. Returns a complaint, or nil.
    static func complaint(_ frames: [[UInt8]]) -> String? {
        if frames.count == 1 {
            do {
                try ReferralValidation.validate(JSONCoding.decode(ReferralBody.self, from: frames[0], what: "the sealed part"))
            } catch let error as RujukError {
                if error.code != .schemaViolation { return "the sealed part was refused with \(error.code)" }
            } catch {
                return "the sealed part threw \(type(of: error)), not a RujukError"
            }
        }
        let message: RRPMessage
        do {
            message = try RRPCodec.decode(frames)
        } catch let error as RujukError {
            _ = RRPCodec.messageID(in: frames)
            return codecCodes.contains(error.code) ? nil : "refused with \(error.code), not a codec code"
        } catch {
            return "threw \(type(of: error)), not a RujukError"
        }
        guard let again = try? RRPCodec.decode(RRPCodec.encode(message), maxMessageBytes: .max) else {
            return "a decoded \(message.command.rawValue) did not decode after encoding"
        }
        return again == message ? nil : "a decoded \(message.command.rawValue) changed through encoding"
    }

    /// A failing input in the corpus file format, to save as Fuzz/corpus/<name>.rrp and replay.
    static func reproducer(_ frames: [[UInt8]]) -> String {
        Data(frames.joined(separator: [0xFF])).base64EncodedString()
    }

    @Test func theCorpusHoldsTheExamplesAndHostileSeeds() {
        let names = Self.corpusFiles().map(\.lastPathComponent)
        #expect(names.contains { $0.hasPrefix("example-valid-") }, "run python3 Fuzz/seed_corpus.py")
        #expect(names.contains { $0.hasPrefix("example-invalid-") })
        #expect(names.contains { $0.hasPrefix("sealed-valid-") })
        #expect(names.filter { $0.hasPrefix("hostile-") }.count >= 20)
    }

    @Test func everyCorpusInputDecodesOrIsRefusedWithACodecError() throws {
        for (label, frames) in try Self.seeds() {
            if let complaint = Self.complaint(frames) {
                Issue.record("\(label): \(complaint)")
            }
        }
    }

    @Test func seededMutationsDecodeOrAreRefusedWithACodecError() throws {
        var random = SplitMix(state: 0x5275_6A75_6B46_757A)
        let seeds = try Self.seeds().map { Array($0.frames.joined(separator: [0xFF])) }
        let mutator = Mutator(seeds: seeds)
        var decoded = 0
        var failures = 0
        for round in 0..<6000 {
            let frames = Self.frames(mutator.mutant(&random))
            guard let complaint = Self.complaint(frames) else {
                if (try? RRPCodec.decode(frames)) != nil { decoded += 1 }
                continue
            }
            failures += 1
            if failures <= 5 { Issue.record("mutation \(round): \(complaint); input (base64) \(Self.reproducer(frames))") }
        }
        // Mutations that never decode test only the first refusal; some must get through.
        #expect(decoded > 100, "only \(decoded) of 6000 mutations decoded")
    }

    @Test(arguments: [("HELLO", 1), ("READY", 1), ("REFER", 1), ("UPDATE", 1), ("ESCALATE", 1), ("COMMIT", 1), ("DELIVER", 2),
                      ("RECEIPT", 1), ("ERROR", 1)])
    func deepNestingIsRefusedBeforeEitherParserRuns(command: String, bodies: Int) throws {
        // 100 000 levels: Foundation's parser would refuse at 512, after building 512 levels.
        for deep in [Array(String(repeating: "[", count: 100_000).utf8), Array(String(repeating: "{\"a\":", count: 20_000).utf8)] {
            let frames = [RRPCodec.header, Array(command.utf8)] + Array(repeating: deep, count: bodies)
            let error = try #require(throws: RujukError.self) { try RRPCodec.decode(frames) }
            #expect(error.code == .schemaViolation)
            #expect(error.reason.hasSuffix("nested deeper than 32 levels"), "\(error.reason)")
            #expect(RRPCodec.messageID(in: frames) == nil)
        }
    }

    @Test func nestingCountsTheBodyItselfAndStopsAt32Levels() throws {
        func hello(nesting levels: Int) -> [[UInt8]] {
            // The body object is level 1; the unknown field adds levels - 1 arrays.
            let extra = String(repeating: "[", count: levels - 1) + String(repeating: "]", count: levels - 1)
            let body = #"{"agency":"polda-kepri","versions":[1],"credit":10,"heartbeat_ms":5000,"x":\#(extra)}"#
            return [RRPCodec.header, Array("HELLO".utf8), Array(body.utf8)]
        }
        #expect(throws: Never.self) { try RRPCodec.decode(hello(nesting: 32)) }
        let error = try #require(throws: RujukError.self) { try RRPCodec.decode(hello(nesting: 33)) }
        #expect(error == RujukError(.schemaViolation, "HELLO: nested deeper than 32 levels"))
    }

    @Test func bracketsInsideStringsDoNotCount() throws {
        let brackets = String(repeating: "[{", count: 100)
        // An escaped quote does not end the string; an escaped backslash before a quote does.
        for software in [brackets, #"\"\#(brackets)"#, #"\\\"\#(brackets)\\"#] {
            let body = #"{"agency":"polda-kepri","versions":[1],"credit":10,"heartbeat_ms":5000,"software":"\#(software)"}"#
            let message = try RRPCodec.decode([RRPCodec.header, Array("HELLO".utf8), Array(body.utf8)])
            guard case .hello(let hello) = message else { Issue.record("decoded as \(message.command)"); continue }
            #expect(hello.software?.contains(brackets) == true)
        }
        #expect(JSONCoding.isNested(Array(#""\\"[[[["#.utf8), deeperThan: 3), "an escaped backslash, then the quote ends the string")
        #expect(!JSONCoding.isNested(Array(#""\"[[[["#.utf8), deeperThan: 3), "an escaped quote keeps the string open")
        // A closer with nothing open is where parsers stop; so does the count.
        #expect(!JSONCoding.isNested(Array(("]" + String(repeating: "[", count: 40)).utf8), deeperThan: 32))
    }

    @Test func sizeIsCheckedBeforeNesting() {
        let deep = [UInt8](repeating: UInt8(ascii: "["), count: 300_000)
        #expect(throws: RujukError(.tooLarge, "message is 300010 bytes; the limit is 262144")) {
            try RRPCodec.decode([RRPCodec.header, Array("HELLO".utf8), deep])
        }
    }

    /// An offset can move an instant out of the years 0000-9999; such a date is refused, so
    /// everything the decoder accepts can be written back as RFC 3339 (found by the fuzz seeds).
    @Test func instantsMovedOutOfYears0000To9999AreRefused() {
        for text in ["0000-01-01T00:00:00.000+23:59", "9999-12-31T23:59:59.999-23:59"] {
            #expect(Timestamp.parse(text) == nil, "\(text)")
        }
        for text in ["0000-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "0000-01-01T23:59:00.000+23:59"] {
            let date = Timestamp.parse(text)
            #expect(date != nil && Timestamp.parse(Timestamp.format(date!)) == date, "\(text)")
        }
    }
}

/// Seeded mutations in the spirit of libFuzzer's, plus the ones aimed at this decoder: deep
/// nesting, numbers out of range, invalid UTF-8, escapes, and whole-frame edits.
struct Mutator {
    let seeds: [[UInt8]]

    static let interesting: [UInt8] = [0x00, 0xFF, 0x7F, 0x80, 0xC0, 0xED, 0xF4, 0x20, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x30, 0x2D]
    static let insertions: [[UInt8]] = [
        Array(String(repeating: "[", count: 31).utf8), Array(String(repeating: "[", count: 33).utf8),
        Array(String(repeating: "{\"a\":", count: 40).utf8), Array(String(repeating: "[", count: 5000).utf8),
        Array("1e400".utf8), Array("-9223372036854775809".utf8), Array("123456789012345678901234567890".utf8), Array("1.5".utf8),
        Array("-0".utf8), Array("null".utf8), Array("true".utf8), Array("\"\"".utf8), Array("{}".utf8), Array("[]".utf8),
        [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0x80], [0xE2, 0x82], [0xEF, 0xBB, 0xBF],
        Array("\\ud800".utf8), Array("\\udc00\\ud800".utf8), Array("\\u0000".utf8), Array("\\".utf8), Array("\"".utf8),
        Array("0000-01-01T00:00:00+23:59".utf8), Array("2026-02-29T00:00:00Z".utf8), [0xFF], [0xFF, 0xFF],
    ]
    static let commands = RRPCommand.allCases.map { Array($0.rawValue.utf8) }

    init(seeds: [[UInt8]]) {
        self.seeds = seeds.filter { !$0.isEmpty }
    }

    func pick<T>(_ items: [T], _ random: inout FuzzTests.SplitMix) -> T {
        items[Int(random.next() % UInt64(items.count))]
    }

    func position(in bytes: [UInt8], _ random: inout FuzzTests.SplitMix) -> Int {
        Int(random.next() % UInt64(bytes.count + 1))
    }

    func mutant(_ random: inout FuzzTests.SplitMix) -> [UInt8] {
        var bytes = pick(seeds, &random)
        for _ in 0..<(1 + Int(random.next() % 4)) {
            mutate(&bytes, &random)
        }
        return bytes
    }

    func mutate(_ bytes: inout [UInt8], _ random: inout FuzzTests.SplitMix) {
        let at = position(in: bytes, &random)
        switch random.next() % 10 {
        case 0 where !bytes.isEmpty:
            let index = min(at, bytes.count - 1)
            bytes[index] ^= 1 << UInt8(random.next() % 8)
        case 1 where !bytes.isEmpty:
            bytes[min(at, bytes.count - 1)] = pick(Self.interesting, &random)
        case 2:
            bytes.removeSubrange(at..<min(bytes.count, at + 1 + Int(random.next() % 64)))
        case 3:
            bytes.removeSubrange(at...)
        case 4:
            let end = min(bytes.count, at + Int(random.next() % 256))
            bytes.insert(contentsOf: Array(bytes[at..<end]), at: end)
        case 5:
            let other = pick(seeds, &random)
            bytes = Array(bytes[..<at]) + other[position(in: other, &random)...]
        case 6, 7:
            bytes.insert(contentsOf: pick(Self.insertions, &random), at: at)
        case 8:
            // Replace a run of digits with a number out of range.
            if let digit = bytes[at...].firstIndex(where: { (0x30...0x39).contains($0) }) {
                let end = bytes[digit...].firstIndex { !(0x30...0x39).contains($0) } ?? bytes.count
                bytes.replaceSubrange(digit..<end, with: pick(Array(Self.insertions[4...8]), &random))
            }
        default:
            // Whole frames: another command, a frame dropped, or one repeated.
            var frames = FuzzTests.frames(bytes)
            let index = Int(random.next() % UInt64(frames.count))
            switch random.next() % 3 {
            case 0 where frames.count > 1: frames[1] = pick(Self.commands, &random)
            case 1: frames.remove(at: index)
            default: frames.insert(frames[index], at: index)
            }
            bytes = Array(frames.joined(separator: [0xFF]))
        }
    }
}

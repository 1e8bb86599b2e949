import Foundation

/// A small, strict JSON reader and writer for the messages on the hot path.
///
/// Foundation's `JSONDecoder` and `JSONEncoder` go through `Codable`'s generic containers and
/// cost tens of microseconds per referral; the broker and the adapters read and write several
/// bodies per referral. This reader parses into a plain tree, and the types on the hot path
/// decode from it and write themselves by hand.
///
/// It is only ever a fast path. It accepts a subset of what the `Codable` path accepts — no
/// fractions or exponents, no duplicate keys, at most `maxDepth` levels — and when it cannot
/// decode a body, `JSONCoding.decode` falls back to `Codable`, which either succeeds or gives
/// the canonical error. So a client never sees a verdict that depends on which path ran. The
/// writer produces the same bytes as `JSONCoding.encoder()` (sorted keys, unescaped slashes);
/// a test holds both paths to that over every example and random values.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])
}

public struct JSONMember: Sendable, Equatable {
    public var key: String
    public var value: JSONValue
}

/// Why the fast path gave up; the caller falls back to `Codable`.
public struct FastJSONMiss: Error, Sendable {
    public init() {}
}

/// The parser. Nesting is bounded so that a hostile body cannot exhaust the stack.
public enum JSONParser {
    public static let maxDepth = 32

    public static func parse(_ bytes: [UInt8]) throws(FastJSONMiss) -> JSONValue {
        try bytes.withUnsafeBufferPointer { (buffer) throws(FastJSONMiss) -> JSONValue in
            var reader = Reader(bytes: buffer)
            reader.skipSpace()
            let value = try reader.value(depth: 0)
            reader.skipSpace()
            guard reader.index == buffer.count else { throw FastJSONMiss() }
            return value
        }
    }

    /// Whether none of a word's eight bytes is a quote, a backslash, a control character or
    /// outside ASCII: the reader's and the writer's strings are scanned eight bytes at a time
    /// while this holds. Each test is the classic "has a zero byte" (or "has a byte below n"):
    /// exact as a yes or no, which is all that is asked of it.
    @inline(__always)
    static func isPlain(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101, high: UInt64 = 0x8080_8080_8080_8080
        let quote = word ^ (ones &* 0x22), backslash = word ^ (ones &* 0x5C)
        let flagged = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | ((word &- ones &* 0x20) & ~word) | word
        return flagged & high == 0
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        mutating func skipSpace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func value(depth: Int) throws(FastJSONMiss) -> JSONValue {
            guard index < bytes.count, depth < JSONParser.maxDepth else { throw FastJSONMiss() }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: return .integer(try integer())
            }
        }

        mutating func literal(_ word: StaticString) throws(FastJSONMiss) {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw FastJSONMiss() }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { throw FastJSONMiss() }
            index += count
        }

        mutating func object(depth: Int) throws(FastJSONMiss) -> JSONValue {
            index += 1
            var members: [JSONMember] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw FastJSONMiss() }
                let key = try string()
                for member in members where member.key == key { throw FastJSONMiss() }
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw FastJSONMiss() }
                index += 1
                skipSpace()
                members.append(JSONMember(key: key, value: try value(depth: depth)))
                skipSpace()
                guard index < bytes.count else { throw FastJSONMiss() }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                guard bytes[index] == UInt8(ascii: "}") else { throw FastJSONMiss() }
                index += 1
                return .object(members)
            }
        }

        mutating func array(depth: Int) throws(FastJSONMiss) -> JSONValue {
            index += 1
            var elements: [JSONValue] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            while true {
                skipSpace()
                elements.append(try value(depth: depth))
                skipSpace()
                guard index < bytes.count else { throw FastJSONMiss() }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                guard bytes[index] == UInt8(ascii: "]") else { throw FastJSONMiss() }
                index += 1
                return .array(elements)
            }
        }

        /// An integer: `-?(0|[1-9][0-9]*)`, within Int64. Anything else is left to `Codable`.
        mutating func integer() throws(FastJSONMiss) -> Int64 {
            var negative = false
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") { negative = true; index += 1 }
            let start = index
            var value: Int64 = 0
            while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 {
                let (times, overflowA) = value.multipliedReportingOverflow(by: 10)
                let (sum, overflowB) = times.addingReportingOverflow(Int64(bytes[index] - 0x30))
                guard !overflowA, !overflowB else { throw FastJSONMiss() }
                value = sum
                index += 1
            }
            let digits = index - start
            guard digits > 0, !(digits > 1 && bytes[start] == 0x30) else { throw FastJSONMiss() }
            if index < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[index]) { throw FastJSONMiss() }
            return negative ? -value : value
        }

        mutating func string() throws(FastJSONMiss) -> String {
            index += 1
            let start = index
            // The common case: no escapes. Copy the bytes and validate them as UTF-8 once.
            var ascii = true
            while index < bytes.count {
                // Eight bytes at a time while none needs a look (a sealed body's base64 is most of
                // a referral's bytes); the byte that does, and the rest of its word, one by one.
                while index + 8 <= bytes.count, JSONParser.isPlain(UnsafeRawPointer(bytes.baseAddress!).loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                    index += 8
                }
                guard index < bytes.count else { break }
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    let slice = UnsafeBufferPointer(rebasing: bytes[start..<index])
                    index += 1
                    // ASCII is valid UTF-8 as it stands: `String(decoding:)` is specialized for it,
                    // whereas `String(validating:)` is generic and looks up type metadata for
                    // every string, a tenth of the cost of reading a referral.
                    if ascii { return String(decoding: slice, as: UTF8.self) }
                    guard let text = String(validating: slice, as: UTF8.self) else { throw FastJSONMiss() }
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                guard byte >= 0x20 else { throw FastJSONMiss() }
                if byte >= 0x80 { ascii = false }
                index += 1
            }
            var unescaped = Array(bytes[start..<index])
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    guard let text = String(validating: unescaped, as: UTF8.self) else { throw FastJSONMiss() }
                    return text
                }
                guard byte >= 0x20 else { throw FastJSONMiss() }
                guard byte == UInt8(ascii: "\\") else { unescaped.append(byte); index += 1; continue }
                guard index + 1 < bytes.count else { throw FastJSONMiss() }
                let escape = bytes[index + 1]
                index += 2
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): unescaped.append(escape)
                case UInt8(ascii: "b"): unescaped.append(0x08)
                case UInt8(ascii: "f"): unescaped.append(0x0C)
                case UInt8(ascii: "n"): unescaped.append(0x0A)
                case UInt8(ascii: "r"): unescaped.append(0x0D)
                case UInt8(ascii: "t"): unescaped.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else { throw FastJSONMiss() }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw FastJSONMiss() }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw FastJSONMiss() }
                    unescaped.append(contentsOf: Array(String(Character(unicode)).utf8))
                default:
                    throw FastJSONMiss()
                }
            }
            throw FastJSONMiss()
        }

        mutating func hex4() throws(FastJSONMiss) -> UInt32 {
            guard index + 4 <= bytes.count else { throw FastJSONMiss() }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt32
                switch byte {
                case 0x30...0x39: digit = UInt32(byte - 0x30)
                case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
                case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
                default: throw FastJSONMiss()
                }
                value = value << 4 | digit
                index += 1
            }
            return value
        }
    }
}

/// An object's fields, read the way the synthesized `Codable` conformances read them:
/// unknown keys ignored, `null` or absent for an optional, everything else strict.
public struct JSONFields: Sendable {
    public let members: [JSONMember]

    public init(_ value: JSONValue) throws(FastJSONMiss) {
        guard case .object(let members) = value else { throw FastJSONMiss() }
        self.members = members
    }

    public init(parsing bytes: [UInt8]) throws(FastJSONMiss) {
        try self.init(JSONParser.parse(bytes))
    }

    public subscript(key: String) -> JSONValue? {
        for member in members where member.key == key { return member.value }
        return nil
    }

    public func string(_ key: String) throws(FastJSONMiss) -> String {
        guard case .string(let text)? = self[key] else { throw FastJSONMiss() }
        return text
    }

    public func optionalString(_ key: String) throws(FastJSONMiss) -> String? {
        switch self[key] {
        case nil, .null?: return nil
        case .string(let text)?: return text
        default: throw FastJSONMiss()
        }
    }

    public func int(_ key: String) throws(FastJSONMiss) -> Int {
        guard case .integer(let value)? = self[key], let int = Int(exactly: value) else { throw FastJSONMiss() }
        return int
    }

    public func optionalInt(_ key: String) throws(FastJSONMiss) -> Int? {
        switch self[key] {
        case nil, .null?: return nil
        case .integer(let value)?:
            guard let int = Int(exactly: value) else { throw FastJSONMiss() }
            return int
        default: throw FastJSONMiss()
        }
    }

    public func bool(_ key: String) throws(FastJSONMiss) -> Bool {
        guard case .bool(let value)? = self[key] else { throw FastJSONMiss() }
        return value
    }

    public func date(_ key: String) throws(FastJSONMiss) -> Date {
        guard let date = Timestamp.parse(try string(key)) else { throw FastJSONMiss() }
        return date
    }

    public func value<E: RawRepresentable>(_ key: String, as type: E.Type = E.self) throws(FastJSONMiss) -> E where E.RawValue == String {
        guard let value = E(rawValue: try string(key)) else { throw FastJSONMiss() }
        return value
    }

    public func optionalValue<E: RawRepresentable>(_ key: String, as type: E.Type = E.self) throws(FastJSONMiss) -> E? where E.RawValue == String {
        guard let text = try optionalString(key) else { return nil }
        guard let value = E(rawValue: text) else { throw FastJSONMiss() }
        return value
    }

    public func strings(_ key: String) throws(FastJSONMiss) -> [String] {
        guard case .array(let elements)? = self[key] else { throw FastJSONMiss() }
        var result: [String] = []
        result.reserveCapacity(elements.count)
        for element in elements {
            guard case .string(let text) = element else { throw FastJSONMiss() }
            result.append(text)
        }
        return result
    }

    public func values<E: RawRepresentable>(_ key: String, as type: E.Type = E.self) throws(FastJSONMiss) -> [E] where E.RawValue == String {
        var result: [E] = []
        for text in try strings(key) {
            guard let value = E(rawValue: text) else { throw FastJSONMiss() }
            result.append(value)
        }
        return result
    }

    public func object(_ key: String) throws(FastJSONMiss) -> JSONFields {
        guard let value = self[key] else { throw FastJSONMiss() }
        return try JSONFields(value)
    }

    public func optionalObject(_ key: String) throws(FastJSONMiss) -> JSONFields? {
        switch self[key] {
        case nil, .null?: return nil
        case let value?: return try JSONFields(value)
        }
    }
}

/// A type that can decode itself from `JSONFields`, throwing `FastJSONMiss` wherever the
/// `Codable` path might disagree.
public protocol FastJSONDecodable: Decodable {
    init(fastJSON fields: JSONFields) throws(FastJSONMiss)
}

/// A type that writes itself exactly as `JSONCoding.encoder()` would encode it.
public protocol FastJSONEncodable: Encodable {
    func write(to writer: inout JSONWriter)
}

/// Writes compact JSON. Keys must be written in sorted order, as `.sortedKeys` would.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    public init(capacity: Int = 512) {
        bytes.reserveCapacity(capacity)
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    public mutating func key(_ key: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func string(_ text: String) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            var runStart = 0, index = 0
            while index < utf8.count {
                // Eight bytes at a time while none needs a look, as the reader scans; a byte
                // outside ASCII is looked at (and kept as it is) like one that needs escaping.
                while index + 8 <= utf8.count, JSONParser.isPlain(UnsafeRawPointer(utf8.baseAddress!).loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                    index += 8
                }
                guard index < utf8.count else { break }
                let byte = utf8[index]
                index += 1
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<(index - 1)]))
                runStart = index
                bytes.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
                case 0x08: bytes.append(UInt8(ascii: "b"))
                case 0x0C: bytes.append(UInt8(ascii: "f"))
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: [UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
        }
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }

    /// A value already encoded as JSON (by this writer), appended as it is.
    public mutating func raw(_ json: [UInt8]) {
        separate()
        bytes.append(contentsOf: json)
        needsComma = true
    }

    public mutating func int(_ value: Int) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
        needsComma = true
    }

    public mutating func bool(_ value: Bool) {
        separate()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
        needsComma = true
    }

    public mutating func date(_ date: Date) {
        // `Timestamp`'s form has nothing to escape.
        separate()
        bytes.append(UInt8(ascii: "\""))
        Timestamp.append(date, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }

    public mutating func strings(_ values: [String]) {
        beginArray()
        for value in values { string(value) }
        endArray()
    }

    public mutating func value<T: FastJSONEncodable>(_ value: T) {
        value.write(to: &self)
    }

    // Fields: key and value together; optionals are left out when nil, as `encodeIfPresent` does.
    public mutating func field(_ name: StaticString, _ value: String) { key(name); string(value) }
    public mutating func field(_ name: StaticString, _ value: String?) { if let value { key(name); string(value) } }
    public mutating func field(_ name: StaticString, _ value: Int) { key(name); int(value) }
    public mutating func field(_ name: StaticString, _ value: Bool) { key(name); bool(value) }
    public mutating func field(_ name: StaticString, _ value: Date) { key(name); date(value) }
    public mutating func field(_ name: StaticString, _ value: [String]) { key(name); strings(value) }
    public mutating func field<E: RawRepresentable>(_ name: StaticString, _ value: E) where E.RawValue == String { key(name); string(value.rawValue) }
    public mutating func field<E: RawRepresentable>(_ name: StaticString, _ value: E?) where E.RawValue == String {
        if let value { key(name); string(value.rawValue) }
    }
    public mutating func field<E: RawRepresentable>(_ name: StaticString, _ values: [E]) where E.RawValue == String {
        key(name); strings(values.map(\.rawValue))
    }
    public mutating func field<T: FastJSONEncodable>(_ name: StaticString, _ value: T) { key(name); value.write(to: &self) }
    public mutating func field<T: FastJSONEncodable>(_ name: StaticString, _ value: T?) { if let value { key(name); value.write(to: &self) } }
    public mutating func field<T: FastJSONEncodable>(_ name: StaticString, _ values: [T]) {
        key(name)
        beginArray()
        for value in values { value.write(to: &self) }
        endArray()
    }
    public mutating func field<T: FastJSONEncodable>(_ name: StaticString, _ values: [T]?) {
        if let values { field(name, values) }
    }
}

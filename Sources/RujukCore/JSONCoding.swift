import Foundation

/// The JSON conventions of every Rujuk body: snake_case keys (spelled out in `CodingKeys`),
/// instants as RFC 3339 UTC with milliseconds (`Timestamp`), sorted keys on output so equal
/// values encode to equal bytes.
public enum JSONCoding {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.format(date))
        }
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = Timestamp.parse(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "'\(text)' is not an RFC 3339 timestamp")
            }
            return date
        }
        return decoder
    }

    /// Encodes a value to bytes; Rujuk's own types always encode.
    public static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        if let fast = value as? any FastJSONEncodable {
            var writer = JSONWriter()
            fast.write(to: &writer)
            return writer.bytes
        }
        do {
            return Array(try encoder().encode(value))
        } catch {
            preconditionFailure("encoding \(T.self) failed: \(error)")
        }
    }

    /// `encode` for a type known to write itself: the same bytes, without asking at run time
    /// whether it can (a dynamic cast, on every message of the hot path).
    public static func encode<T: FastJSONEncodable>(_ value: T) -> [UInt8] {
        var writer = JSONWriter()
        value.write(to: &writer)
        return writer.bytes
    }

    /// `decode` for a type known to read itself: the same value or error, without the dynamic
    /// casts of the generic path.
    public static func decode<T: FastJSONDecodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        if let fields = try? JSONFields(parsing: bytes), let value = try? T(fastJSON: fields) {
            return value
        }
        return try decodeWithCodable(type, from: bytes, what: what)
    }

    /// Decodes bytes, turning Foundation's errors into `schema_violation` with the field path.
    ///
    /// A body nested deeper than `JSONParser.maxDepth` is refused with `schema_violation`
    /// before `Codable` reads any of it.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        // The fast path either gives the value Codable would give, or gives up; then Codable
        // decides, and its error names the field.
        if let fast = T.self as? any FastJSONDecodable.Type,
           let fields = try? JSONFields(parsing: bytes),
           let value = try? fast.init(fastJSON: fields) as? T {
            return value
        }
        return try decodeWithCodable(type, from: bytes, what: what)
    }

    private static func decodeWithCodable<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        // The fast parser gives up at `maxDepth`, so whatever it decoded was shallow enough and
        // the hot path pays nothing for this check. Foundation's parser would go on to 512
        // levels and build the whole tree first: count before it runs.
        if isNested(bytes, deeperThan: JSONParser.maxDepth) {
            throw RujukError(.schemaViolation, "\(what): nested deeper than \(JSONParser.maxDepth) levels")
        }
        do {
            return try decoder().decode(T.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw RujukError(.schemaViolation, "\(what): \(describe(error))")
        } catch {
            throw RujukError(.schemaViolation, "\(what): not valid JSON")
        }
    }

    /// Whether JSON text opens more than `limit` arrays and objects inside one another, in one
    /// pass that stops at the first one too many. Brackets inside strings do not count; an
    /// escaped quote does not end a string. A closing bracket with nothing open is where every
    /// parser stops, so the count stops there too.
    static func isNested(_ bytes: [UInt8], deeperThan limit: Int) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            var depth = 0
            var index = 0
            while index < buffer.count {
                switch buffer[index] {
                case UInt8(ascii: "\""):
                    // Skip the string to its closing quote; an escape takes the next byte with it.
                    index += 1
                    while index < buffer.count, buffer[index] != UInt8(ascii: "\"") {
                        index += buffer[index] == UInt8(ascii: "\\") ? 2 : 1
                    }
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    depth += 1
                    if depth > limit { return true }
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    depth -= 1
                    if depth < 0 { return false }
                default:
                    break
                }
                index += 1
            }
            return false
        }
    }

    /// A one-line account of a decoding error that names the field, never the value (a value
    /// could be personal data, and reasons end up in logs).
    public static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            let all = keys + (last.map { [$0] } ?? [])
            let text = all.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
                .reduce("") { $0.isEmpty || $1.hasPrefix("[") ? $0 + $1 : $0 + "." + $1 }
            return text.isEmpty ? "the body" : "'\(text)'"
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath, key)) is required"
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)) must be \(jsonName(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)) must be \(jsonName(type)), not null"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "not valid JSON" }
            if context.debugDescription.contains("RFC 3339") {
                return "\(path(context.codingPath)) must be an RFC 3339 timestamp"
            }
            return "\(path(context.codingPath)) has a value outside its allowed set"
        @unknown default:
            return "does not follow the schema"
        }
    }

    private static func jsonName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type, is Double.Type: "a number"
        case is [Any].Type: "an array"
        default: String(describing: type).hasPrefix("Array") ? "an array" : "an object"
        }
    }
}

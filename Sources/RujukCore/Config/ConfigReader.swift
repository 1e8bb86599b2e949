import Foundation

/// Typed reads from a TOML table, each failure naming the file, the line and the key.
public struct ConfigReader: Sendable {
    public let file: String
    public let table: TOMLTable
    /// The dotted path of this table, for messages (`broker`, `agency[3]`).
    public let path: String

    public init(file: String, table: TOMLTable, path: String = "") {
        self.file = file
        self.table = table
        self.path = path
    }

    /// Reads and parses a TOML file.
    public static func load(_ url: URL) throws -> ConfigReader {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw ConfigError(file: url.path, line: 0, message: "cannot read the file (\(error.localizedDescription))")
        }
        return ConfigReader(file: url.path, table: try TOMLParser.parse(text, file: url.path))
    }

    public func error(_ key: String?, _ message: String) -> ConfigError {
        let line = key.flatMap { table[$0]?.line } ?? table.line
        let name = [path, key ?? ""].filter { !$0.isEmpty }.joined(separator: ".")
        return ConfigError(file: file, line: line, message: name.isEmpty ? message : "'\(name)': \(message)")
    }

    /// Refuses keys the reader does not know, so a typo is not silently ignored.
    public func allowOnly(_ known: Set<String>) throws {
        for key in table.keys where !known.contains(key) {
            throw error(key, "unknown key (expected one of: \(known.sorted().joined(separator: ", ")))")
        }
    }

    public func string(_ key: String) throws -> String? {
        guard let node = table[key] else { return nil }
        guard case .string(let value) = node.value else { throw error(key, "must be a string, not \(node.value.typeName)") }
        return value
    }

    public func requiredString(_ key: String) throws -> String {
        guard let value = try string(key) else { throw error(nil, "the key '\(key)' is required") }
        return value
    }

    public func int(_ key: String, in range: ClosedRange<Int>? = nil) throws -> Int? {
        guard let node = table[key] else { return nil }
        guard case .integer(let value) = node.value else { throw error(key, "must be an integer, not \(node.value.typeName)") }
        if let range, !range.contains(Int(value)) {
            throw error(key, "must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return Int(value)
    }

    public func bool(_ key: String) throws -> Bool? {
        guard let node = table[key] else { return nil }
        guard case .boolean(let value) = node.value else { throw error(key, "must be true or false, not \(node.value.typeName)") }
        return value
    }

    public func strings(_ key: String) throws -> [String]? {
        guard let node = table[key] else { return nil }
        guard case .array(let items) = node.value else { throw error(key, "must be an array of strings") }
        return try items.map {
            guard case .string(let value) = $0.value else { throw error(key, "must be an array of strings") }
            return value
        }
    }

    /// A duration such as `"15m"`, `"1h30m"`, `"7d"`, `"500ms"`, in seconds.
    public func duration(_ key: String) throws -> TimeInterval? {
        guard let text = try string(key) else { return nil }
        guard let seconds = Duration.parse(text) else {
            throw error(key, "'\(text)' is not a duration (use e.g. 90s, 15m, 4h, 3d, 1h30m)")
        }
        return seconds
    }

    /// A sub-table, as a reader of its own.
    public func table(_ key: String) throws -> ConfigReader? {
        guard let node = table[key] else { return nil }
        guard case .table(let child) = node.value else { throw error(key, "must be a table") }
        return ConfigReader(file: file, table: child, path: [path, key].filter { !$0.isEmpty }.joined(separator: "."))
    }

    /// An array of tables (`[[key]]`), each as a reader.
    public func tables(_ key: String) throws -> [ConfigReader] {
        guard let node = table[key] else { return [] }
        guard case .array(let items) = node.value else { throw error(key, "must be an array of tables ([[\(key)]])") }
        return try items.enumerated().map { index, item in
            guard case .table(let child) = item.value else { throw error(key, "must be an array of tables ([[\(key)]])") }
            return ConfigReader(file: file, table: child, path: "\(key)[\(index)]")
        }
    }
}

/// Durations written the way operators write them.
public enum Duration {
    /// Parses `90s`, `15m`, `4h`, `3d`, `2w`, `500ms` and sums such as `1h30m`; nil otherwise.
    public static func parse(_ text: String) -> TimeInterval? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604_800)]
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        guard !rest.isEmpty else { return nil }
        var total: TimeInterval = 0
        while !rest.isEmpty {
            let digits = rest.prefix(while: { $0.isNumber || $0 == "." })
            guard let number = Double(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            guard let (unit, factor) = units.first(where: { rest.hasPrefix($0.0) && !(($0.0 == "m") && rest.hasPrefix("ms")) }) else { return nil }
            rest = rest.dropFirst(unit.count)
            total += number * factor
        }
        return total
    }

    /// The shortest of `15m`, `4h`, `3d`, `1h30m` for a number of seconds.
    public static func format(_ seconds: TimeInterval) -> String {
        var remaining = Int(seconds.rounded())
        if remaining == 0 { return "0s" }
        var parts: [String] = []
        for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] where remaining >= size {
            parts.append("\(remaining / size)\(unit)")
            remaining %= size
        }
        return parts.joined()
    }
}

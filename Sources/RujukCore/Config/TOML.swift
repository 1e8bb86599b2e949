/// A TOML value with the line it was written on, so that configuration errors can name it.
public indirect enum TOMLValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    case array([TOMLNode])
    case table(TOMLTable)

    var typeName: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .float: "a number"
        case .boolean: "a boolean"
        case .array: "an array"
        case .table: "a table"
        }
    }
}

/// A value and where it stands in its file.
public struct TOMLNode: Sendable, Equatable {
    public var value: TOMLValue
    public var line: Int
}

/// A TOML table: keys in file order, each with its value and line.
public struct TOMLTable: Sendable, Equatable {
    public internal(set) var keys: [String] = []
    public internal(set) var entries: [String: TOMLNode] = [:]
    /// The line of the table's header (`[name]`), or of its first key for inline tables.
    public internal(set) var line: Int

    init(line: Int) { self.line = line }

    public subscript(key: String) -> TOMLNode? { entries[key] }

    mutating func set(_ key: String, _ node: TOMLNode) { 
        if entries[key] == nil { keys.append(key) }
        entries[key] = node
    }
}

/// A parser for the TOML that Rujuk's configuration uses: tables, arrays of tables, dotted
/// keys, basic and literal strings (single- and multi-line), integers, floats, booleans,
/// arrays and inline tables. Dates are not supported; Rujuk writes durations as strings.
///
/// It is Rujuk's own so that every value keeps its line number: "agencies.toml:42: unknown
/// service 'shelterr'" is worth more to an operator than "invalid value".
public struct TOMLParser {
    private let chars: [Character]
    private var index = 0
    private var line = 1
    private let file: String

    public static func parse(_ text: String, file: String) throws -> TOMLTable {
        var parser = TOMLParser(chars: Array(text), file: file)
        return try parser.document()
    }

    private init(chars: [Character], file: String) {
        self.chars = chars
        self.file = file
    }

    private func fail(_ message: String) -> ConfigError {
        ConfigError(file: file, line: line, message: message)
    }

    private var current: Character? { index < chars.count ? chars[index] : nil }

    private mutating func advance() {
        if current == "\n" { line += 1 }
        index += 1
    }

    private mutating func skipSpaces() {
        while let c = current, c == " " || c == "\t" { advance() }
    }

    private mutating func skipComment() {
        if current == "#" { while let c = current, c != "\n" { advance() } }
    }

    /// Skips blank lines, comments and whitespace, newlines included.
    private mutating func skipTrivia() {
        while let c = current {
            if c == " " || c == "\t" || c == "\n" || c == "\r" { advance() }
            else if c == "#" { skipComment() }
            else { break }
        }
    }

    private mutating func endOfLine() throws {
        skipSpaces()
        skipComment()
        if current == "\r" { advance() }
        guard current == nil || current == "\n" else { throw fail("expected the end of the line, found '\(current!)'") }
    }

    private mutating func document() throws -> TOMLTable {
        var root = TOMLTable(line: 1)
        var path: [String] = []
        var definedTables = Set<[String]>()
        while true {
            skipTrivia()
            guard let c = current else { break }
            if c == "[" {
                advance()
                let isArray = current == "["
                if isArray { advance() }
                skipSpaces()
                let keys = try keyPath()
                skipSpaces()
                guard current == "]" else { throw fail("expected ']' to close the table header") }
                advance()
                if isArray {
                    guard current == "]" else { throw fail("expected ']]' to close the array-of-tables header") }
                    advance()
                    try appendArrayTable(&root, keys)
                } else {
                    guard definedTables.insert(keys).inserted else { throw fail("table [\(keys.joined(separator: "."))] is defined twice") }
                    try ensureTable(&root, keys, headerLine: line)
                }
                path = keys
                try endOfLine()
            } else {
                let keyLine = line
                let keys = try keyPath()
                skipSpaces()
                guard current == "=" else { throw fail("expected '=' after the key '\(keys.joined(separator: "."))'") }
                advance()
                skipSpaces()
                let value = try self.value()
                try insert(&root, path, keys, TOMLNode(value: value, line: keyLine))
                try endOfLine()
            }
        }
        return root
    }

    private mutating func keyPath() throws -> [String] {
        var keys = [try key()]
        skipSpaces()
        while current == "." {
            advance()
            skipSpaces()
            keys.append(try key())
            skipSpaces()
        }
        return keys
    }

    private mutating func key() throws -> String {
        if current == "\"" { return try basicString() }
        if current == "'" { return try literalString() }
        var text = ""
        while let c = current, c.isLetter || c.isNumber || c == "_" || c == "-" {
            text.append(c)
            advance()
        }
        guard !text.isEmpty else { throw fail(current.map { "unexpected '\($0)' where a key was expected" } ?? "a key was expected") }
        return text
    }

    private mutating func value() throws -> TOMLValue {
        guard let c = current else { throw fail("a value was expected") }
        switch c {
        case "\"": return .string(try basicString())
        case "'": return .string(try literalString())
        case "[": return try array()
        case "{": return try inlineTable()
        case "t", "f":
            let word = take { $0.isLetter }
            if word == "true" { return .boolean(true) }
            if word == "false" { return .boolean(false) }
            throw fail("'\(word)' is not a value (strings need quotes)")
        default:
            let word = take { !" \t\n\r,]}#".contains($0) }
            let cleaned = word.replacingOccurrences(of: "_", with: "")
            if let integer = Int64(cleaned) { return .integer(integer) }
            if let float = Double(cleaned), cleaned.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) { return .float(float) }
            throw fail(word.isEmpty ? "a value was expected" : "'\(word)' is not a value (strings need quotes)")
        }
    }

    private mutating func take(while predicate: (Character) -> Bool) -> String {
        var text = ""
        while let c = current, predicate(c) { text.append(c); advance() }
        return text
    }

    private mutating func array() throws -> TOMLValue {
        advance()
        var items: [TOMLNode] = []
        while true {
            skipTrivia()
            if current == "]" { advance(); return .array(items) }
            let itemLine = line
            items.append(TOMLNode(value: try value(), line: itemLine))
            skipTrivia()
            if current == "," { advance(); continue }
            if current == "]" { advance(); return .array(items) }
            throw fail("expected ',' or ']' in an array")
        }
    }

    private mutating func inlineTable() throws -> TOMLValue {
        let startLine = line
        advance()
        var table = TOMLTable(line: startLine)
        skipSpaces()
        if current == "}" { advance(); return .table(table) }
        while true {
            skipSpaces()
            let keyLine = line
            let keys = try keyPath()
            skipSpaces()
            guard current == "=" else { throw fail("expected '=' in an inline table") }
            advance()
            skipSpaces()
            let item = try value()
            try insert(&table, [], keys, TOMLNode(value: item, line: keyLine))
            skipSpaces()
            if current == "," { advance(); continue }
            if current == "}" { advance(); return .table(table) }
            throw fail("expected ',' or '}' in an inline table")
        }
    }

    private mutating func basicString() throws -> String {
        advance()
        let multiline = current == "\"" && index + 1 < chars.count && chars[index + 1] == "\""
        if multiline {
            advance(); advance()
            if current == "\n" { advance() }
        } else if current == "\"" {
            advance()
            return ""
        }
        var text = ""
        while true {
            guard let c = current else { throw fail("a string is not closed") }
            if c == "\"" {
                if !multiline { advance(); return text }
                if index + 2 < chars.count, chars[index + 1] == "\"", chars[index + 2] == "\"" {
                    advance(); advance(); advance()
                    return text
                }
            }
            if c == "\n" && !multiline { throw fail("a string is not closed before the end of the line") }
            if c == "\\" {
                advance()
                guard let escaped = current else { throw fail("a string is not closed") }
                switch escaped {
                case "n": text.append("\n")
                case "t": text.append("\t")
                case "r": text.append("\r")
                case "\"": text.append("\"")
                case "\\": text.append("\\")
                case "u", "U":
                    let count = escaped == "u" ? 4 : 8
                    var hex = ""
                    for _ in 0..<count { advance(); if let h = current { hex.append(h) } }
                    guard let scalar = UInt32(hex, radix: 16).flatMap(Unicode.Scalar.init) else { throw fail("bad unicode escape '\\\(escaped)\(hex)'") }
                    text.unicodeScalars.append(scalar)
                case "\n" where multiline:
                    while let w = current, w == " " || w == "\n" || w == "\t" || w == "\r" { advance() }
                    continue
                default: throw fail("unknown escape '\\\(escaped)' in a string")
                }
                advance()
                continue
            }
            text.append(c)
            advance()
        }
    }

    private mutating func literalString() throws -> String {
        advance()
        var text = ""
        while true {
            guard let c = current, c != "\n" else { throw fail("a string is not closed before the end of the line") }
            advance()
            if c == "'" { return text }
            text.append(c)
        }
    }

    // MARK: - Building the tree

    private func insert(_ root: inout TOMLTable, _ path: [String], _ keys: [String], _ node: TOMLNode) throws {
        try modify(&root, path + keys.dropLast()) { table in
            let key = keys.last!
            if table.entries[key] != nil { throw fail("the key '\((path + keys).joined(separator: "."))' is set twice") }
            table.set(key, node)
        }
    }

    private func ensureTable(_ root: inout TOMLTable, _ keys: [String], headerLine: Int) throws {
        try modify(&root, keys) { table in table.line = headerLine }
    }

    private func appendArrayTable(_ root: inout TOMLTable, _ keys: [String]) throws {
        try modify(&root, Array(keys.dropLast())) { table in
            let key = keys.last!
            let element = TOMLNode(value: .table(TOMLTable(line: line)), line: line)
            switch table.entries[key]?.value {
            case nil:
                table.set(key, TOMLNode(value: .array([element]), line: line))
            case .array(var items)?:
                items.append(element)
                table.entries[key] = TOMLNode(value: .array(items), line: table.entries[key]!.line)
            default:
                throw fail("'\(keys.joined(separator: "."))' is not an array of tables")
            }
        }
    }

    /// Walks to the table at `path`, creating tables as needed; into an array of tables it
    /// walks to the last element, as TOML says.
    private func modify(_ table: inout TOMLTable, _ path: [String], _ body: (inout TOMLTable) throws -> Void) throws {
        guard let first = path.first else { return try body(&table) }
        let rest = Array(path.dropFirst())
        switch table.entries[first]?.value {
        case nil:
            var child = TOMLTable(line: line)
            try modify(&child, rest, body)
            table.set(first, TOMLNode(value: .table(child), line: line))
        case .table(var child)?:
            try modify(&child, rest, body)
            table.entries[first]!.value = .table(child)
        case .array(var items)? where items.last.map({ if case .table = $0.value { true } else { false } }) ?? false:
            guard case .table(var child) = items[items.count - 1].value else { return }
            try modify(&child, rest, body)
            items[items.count - 1].value = .table(child)
            table.entries[first]!.value = .array(items)
        default:
            throw fail("'\(first)' is already a value, not a table")
        }
    }
}

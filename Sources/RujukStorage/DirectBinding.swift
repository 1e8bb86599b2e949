import GRDB
import GRDBSQLite

/// One value bound to a `?` of a statement on the hot path.
public enum SQLArgument {
    case text(String)
    case int(Int64)
    case blob([UInt8])
    case null

    /// `.text`, or `.null` for nil.
    public static func optional(_ text: String?) -> SQLArgument {
        text.map { .text($0) } ?? .null
    }
}

private let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
private let empty: [UInt8] = [0]

extension Database {
    /// Runs a cached statement that returns no rows, binding its arguments straight through
    /// SQLite's C API.
    ///
    /// GRDB's `StatementArguments` box every value as an existential and then convert it to a
    /// `DatabaseValue`; on the group commit that was a tenth of the broker's CPU. This is for
    /// the few statements that run for every message; everything else goes through GRDB.
    /// `statements` finds the statement by its literal's address instead of hashing its text.
    public func run(_ statements: PreparedStatements, _ sql: StaticString, _ arguments: SQLArgument...) throws {
        let handle = try statements.statement(self, sql).sqliteStatement
        sqlite3_reset(handle)
        try bind(arguments, to: handle, sql: sql)
        let result = sqlite3_step(handle)
        guard result == SQLITE_DONE || result == SQLITE_ROW else {
            let error = failure(sql)
            sqlite3_reset(handle)
            throw error
        }
        sqlite3_reset(handle)
    }

    /// Runs a cached query the same way and hands its first row to `read`; nil when it returns
    /// none. For the lookups that run for every message: GRDB's `Row` and cursor cost several
    /// times the query itself there.
    public func first<T>(_ statements: PreparedStatements, _ sql: StaticString, _ arguments: SQLArgument..., read: (SQLRow) throws -> T) throws -> T? {
        let handle = try statements.statement(self, sql).sqliteStatement
        sqlite3_reset(handle)
        defer { sqlite3_reset(handle) }
        try bind(arguments, to: handle, sql: sql)
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return try read(SQLRow(handle: handle))
        case SQLITE_DONE: return nil
        default: throw failure(sql)
        }
    }

    private func bind(_ arguments: [SQLArgument], to handle: OpaquePointer, sql: StaticString) throws {
        guard Int(sqlite3_bind_parameter_count(handle)) == arguments.count else {
            throw DatabaseError(resultCode: .SQLITE_RANGE, message: "\(arguments.count) arguments for \(sqlite3_bind_parameter_count(handle)) parameters", sql: "\(sql)")
        }
        for (offset, argument) in arguments.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch argument {
            case .null:
                code = sqlite3_bind_null(handle, index)
            case .int(let value):
                code = sqlite3_bind_int64(handle, index, value)
            case .text(var text):
                code = text.withUTF8 { utf8 in
                    empty.withUnsafeBufferPointer { fallback in
                        // An empty buffer may have no address, and a NULL pointer binds NULL.
                        let base = utf8.baseAddress ?? fallback.baseAddress!
                        return base.withMemoryRebound(to: CChar.self, capacity: max(utf8.count, 1)) {
                            sqlite3_bind_text(handle, index, $0, Int32(utf8.count), transient)
                        }
                    }
                }
            case .blob(let bytes):
                code = bytes.withUnsafeBytes { raw in
                    empty.withUnsafeBytes { fallback in
                        sqlite3_bind_blob(handle, index, raw.baseAddress ?? fallback.baseAddress!, Int32(raw.count), transient)
                    }
                }
            }
            guard code == SQLITE_OK else { throw failure(sql) }
        }
    }

    private func failure(_ sql: StaticString) -> DatabaseError {
        DatabaseError(
            resultCode: ResultCode(rawValue: sqlite3_extended_errcode(sqliteConnection)),
            message: sqliteConnection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) },
            sql: "\(sql)")
    }
}

/// The current row of a query run by `Database.first`, valid only inside its `read` closure.
public struct SQLRow {
    fileprivate let handle: OpaquePointer

    /// A column's text; "" for NULL.
    public func text(_ column: Int32) -> String {
        guard let bytes = sqlite3_column_text(handle, column) else { return "" }
        return String(decoding: UnsafeBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(handle, column))), as: UTF8.self)
    }

    /// A column's bytes; empty for NULL.
    public func blob(_ column: Int32) -> [UInt8] {
        // The pointer first, then its length, as SQLite asks.
        guard let bytes = sqlite3_column_blob(handle, column) else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(handle, column))))
    }

    public func int(_ column: Int32) -> Int64 {
        sqlite3_column_int64(handle, column)
    }

    public func isNull(_ column: Int32) -> Bool {
        sqlite3_column_type(handle, column) == SQLITE_NULL
    }
}

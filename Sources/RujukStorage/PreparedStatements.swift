import GRDB

/// The statements a store runs for every message, prepared once on its writer connection and
/// found again by the address of their SQL literal.
///
/// GRDB's statement cache is keyed by the SQL text: every look-up hashes the whole text (a few
/// hundred bytes of SipHash) and compares it again — ~24,000 instructions per referral over the
/// broker's and the recipient's hot path (`make profile`, 2026-12-03). A `StaticString` literal
/// lives in the binary for as long as the process, so its address names it: a look-up here is a
/// few pointer comparisons.
///
/// It belongs to one store and holds the statements of the first writable connection it is used
/// with — the store's writer, the only connection that runs these statements in a transaction.
/// Any other connection (a pool's read-only readers, a test's own queue) goes to GRDB's cache
/// as before. Only the writer uses it, and the writer is serialized, so it takes no lock.
///
/// Prepared statements keep their connection from closing (`sqlite3_close` answers BUSY):
/// `DurableDatabase.close` empties this on the writer before it closes the pool.
public final class PreparedStatements: @unchecked Sendable {
    private var connection: SQLiteConnection?
    private var keys: [UnsafeRawPointer] = []
    private var statements: [Statement] = []

    public init() {}

    /// The statement for `sql` on `db`, prepared on first use.
    func statement(_ db: Database, _ sql: StaticString) throws -> Statement {
        guard sql.hasPointerRepresentation, let handle = db.sqliteConnection else {
            return try db.cachedStatement(sql: "\(sql)")
        }
        if connection == nil, !db.configuration.readonly { connection = handle }
        guard handle == connection else { return try db.cachedStatement(sql: "\(sql)") }
        let key = UnsafeRawPointer(sql.utf8Start)
        // Linear: a store has a couple of dozen hot statements, and comparing their addresses
        // costs less than hashing one.
        for index in keys.indices where keys[index] == key { return statements[index] }
        let statement = try db.makeStatement(sql: "\(sql)")
        keys.append(key)
        statements.append(statement)
        return statement
    }

    /// How many statements are held (for the tests).
    public var count: Int { statements.count }

    /// Finalizes every statement; call on the writer, before its connection closes. The next
    /// use prepares them again on whichever writable connection comes first.
    public func removeAll() {
        keys.removeAll()
        statements.removeAll()
        connection = nil
    }
}

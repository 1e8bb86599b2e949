import Foundation
import GRDB
@testable import RujukAdapter
@testable import RujukBroker
import RujukCore
import RujukStorage
import Testing

@Suite(.timeLimit(.minutes(5))) struct StorageTests {
    func scratch() throws -> DatabasePool {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-storage-\(UUID().uuidString)/test.sqlite")
        let pool = try DurableDatabase.open(url, durability: .full, label: "test", what: "test store", pageSize: .large)
        try pool.write { try $0.execute(sql: "CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, note TEXT, n INTEGER, data BLOB)") }
        return pool
    }

    /// A store opened as the broker's and the ledgers' are, with its checkpointer, holding `t`.
    func openedWithCheckpointer() throws -> (URL, DatabasePool, Checkpointer) {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-storage-\(UUID().uuidString)/test.sqlite")
        var migrator = DatabaseMigrator()
        migrator.registerMigration("t") { try $0.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)") }
        let (pool, checkpointer) = try DurableDatabase.open(url, durability: .full, label: "test", what: "test store", pageSize: .large, migrator: migrator)
        return (url, pool, checkpointer)
    }

    @Test func directBindingStoresWhatGRDBWouldAndReportsErrors() throws {
        let pool = try scratch()
        let statements = PreparedStatements()
        try pool.write { db in
            try db.run(statements, "INSERT INTO t (id, note, n, data) VALUES (?, ?, ?, ?)", .text("a"), .text(""), .int(-7), .blob([]))
            try db.run(statements, "INSERT INTO t (id, note, n, data) VALUES (?, ?, ?, ?)", .text("b"), .optional(nil), .int(1 << 40), .blob([0, 255, 1]))
            try db.run(statements, "INSERT INTO t (id, note, n, data) VALUES (?, ?, ?, ?)", .text("c"), .text("Jl. Raya — é 中 😀"), .null, .null)
        }
        let rows = try pool.read { try Row.fetchAll($0, sql: "SELECT id, note, n, data, typeof(note), typeof(data) FROM t ORDER BY id") }
        #expect(rows[0][1] as String? == "", "an empty text is '' and not NULL")
        #expect(rows[0][4] as String == "text")
        #expect(rows[0][5] as String == "blob", "an empty blob is a blob and not NULL")
        #expect(rows[0][2] as Int64 == -7)
        #expect(rows[1][1] as String? == nil)
        #expect(rows[1][2] as Int64 == 1 << 40)
        #expect(rows[1][3] as Data == Data([0, 255, 1]))
        #expect(rows[2][1] as String == "Jl. Raya — é 中 😀")

        #expect(throws: DatabaseError.self, "a duplicate key is an error, not ignored") {
            try pool.write { try $0.run(statements, "INSERT INTO t (id) VALUES (?)", .text("a")) }
        }
        #expect(throws: DatabaseError.self, "too few arguments never reuse an earlier binding") {
            try pool.write { try $0.run(statements, "INSERT INTO t (id, note) VALUES (?, ?)", .text("d")) }
        }
        #expect(try pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM t") } == 3)
        let blob = try pool.write { try $0.first(statements, "SELECT data FROM t WHERE id = ?", .text("b")) { $0.blob(0) } }
        #expect(blob == [0, 255, 1])
        #expect(try pool.write { try $0.first(statements, "SELECT data FROM t WHERE id = ?", .text("nobody")) { $0.blob(0) } } == nil)
    }

    /// The hot statements are prepared once on the writer and found again by their literal;
    /// a reader's connection does not get them (they would run on the wrong connection), and a
    /// clean close finalizes them first — a connection with statements left refuses to close.
    @Test func hotStatementsArePreparedOnceOnTheWriterOnly() throws {
        let (url, pool, checkpointer) = try openedWithCheckpointer()
        let statements = PreparedStatements()
        for round in 0..<3 {
            try pool.write { db in
                for id in 0..<50 { try db.run(statements, "INSERT INTO t (id, data) VALUES (?, ?)", .int(Int64(round * 50 + id)), .blob([7])) }
                #expect(try db.first(statements, "SELECT COUNT(*) FROM t") { $0.int(0) } == Int64(round * 50 + 50))
            }
        }
        #expect(statements.count == 2, "one statement per literal, however often it runs")
        let counted = try pool.read { db in try db.first(statements, "SELECT MAX(id) FROM t") { $0.int(0) } }
        #expect(counted == 149, "a reader runs the query on its own connection")
        #expect(statements.count == 2, "nothing of a reader's is kept")
        #expect(try DurableDatabase.close(pool, checkpointer: checkpointer, statements: statements), "the log emptied")
        #expect(statements.count == 0)
        #expect(try DatabaseQueue(path: url.path).read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM t") } == 150)
    }

    /// A store cut short (a partial copy, a restore on a full disk) is refused at open, before

    /// The ledger's hot reads of a handoff are written out as literals (a `StaticString` cannot
    /// be built by interpolation), and `Ledger.view` reads their columns by position: each must
    /// select `viewColumnsWithoutBody`, in its order, before anything else.
    @Test func theWrittenOutHandoffReadsSelectTheViewsColumnsInOrder() {
        func words(_ sql: String) -> String { sql.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
        let view = words("SELECT " + Ledger.viewColumnsWithoutBody)
        #expect(words("\(Ledger.viewByID)") == view + " FROM referral WHERE id = ?")
        #expect(words("\(Ledger.remoteEventHandoff)") == view + ", esc_level, esc_clock, esc_since, told FROM referral WHERE id = ?")
    }
    /// SQLite would meet the missing pages in the middle of routing, and nothing is written.
    @Test func aTruncatedStoreIsRefusedAtOpenAndLeftAsItIs() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-storage-\(UUID().uuidString)/test.sqlite")
        do {
            let pool = try DurableDatabase.open(url, durability: .full, label: "test", what: "test store", pageSize: .large)
            try pool.write { db in
                try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
                for id in 0..<200 { try db.execute(sql: "INSERT INTO t (id, data) VALUES (?, ?)", arguments: [id, Data(repeating: 7, count: 2000)]) }
            }
            try pool.close()
        }
        #expect(!FileManager.default.fileExists(atPath: url.path + "-wal"), "a clean close leaves no WAL")
        let whole = try Data(contentsOf: url)
        for cut in [whole.count / 2 / 4096 * 4096, whole.count - 100] {
            let damaged = whole.prefix(cut)
            try damaged.write(to: url)
            let error = try #require(throws: RujukError.self) { _ = try DurableDatabase.open(url, durability: .full, label: "test", what: "test store", pageSize: .large) }
            #expect(error.code == .storageUnavailable)
            #expect(error.reason.contains("truncated") && error.reason.contains(url.path), "\(error.reason)")
            #expect(try Data(contentsOf: url) == damaged, "the file is left byte for byte")
            #expect(!FileManager.default.fileExists(atPath: url.path + "-wal"), "nothing is written beside it")
        }
        var garbage = whole
        garbage.replaceSubrange(0..<16, with: Data(repeating: 0x5A, count: 16))
        try garbage.write(to: url)
        let error = try #require(throws: RujukError.self) { _ = try DurableDatabase.open(url, durability: .full, label: "test", what: "test store", pageSize: .large) }
        #expect(error.reason.contains("not an SQLite database"), "\(error.reason)")

        try whole.write(to: url)
        let pool = try DurableDatabase.open(url, durability: .full, label: "test", what: "test store", pageSize: .large)
        #expect(try pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM t") } == 200, "the intact file opens")
    }

    /// A clean stop leaves the file standing alone, even after readers and the checkpointer
    /// have used it (GRDB closes its read-only readers last, and they do not empty the log):
    /// the log is empty, a copy of the file without it holds every row, and the next open can
    /// check the file's length against its header.
    @Test func aCleanCloseLeavesTheFileWholeWithoutItsLog() throws {
        let (url, pool, checkpointer) = try openedWithCheckpointer()
        let statements = PreparedStatements()
        try pool.write { db in
            for id in 0..<200 { try db.run(statements, "INSERT INTO t (id, data) VALUES (?, ?)", .int(Int64(id)), .blob([UInt8](repeating: 7, count: 2000))) }
        }
        #expect(try pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM t") } == 200)
        _ = try checkpointer.checkpoint()
        try pool.write { try $0.execute(sql: "DELETE FROM t WHERE id >= 100") }

        #expect(try DurableDatabase.close(pool, checkpointer: checkpointer, statements: statements), "the log emptied")
        let wal = (try? FileManager.default.attributesOfItem(atPath: url.path + "-wal")[.size] as? Int) ?? 0
        #expect(wal == 0, "the log holds \(wal) bytes after a clean close")
        let copy = url.deletingLastPathComponent().appendingPathComponent("copy.sqlite")
        try FileManager.default.copyItem(at: url, to: copy)
        #expect(try DatabaseQueue(path: copy.path).read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM t") } == 100, "the file alone is whole")

        let whole = try Data(contentsOf: url)
        try whole.prefix(whole.count / 2 / 8192 * 8192).write(to: url)
        let error = try #require(throws: RujukError.self) { _ = try DurableDatabase.open(url, durability: .full, label: "test", what: "test store", pageSize: .large) }
        #expect(error.reason.contains("truncated"), "\(error.reason)")
    }

    /// The broker's store is made with 4 KiB pages (its small commits write each page they
    /// touch in full), a ledger with 8 KiB (its ~2.5 KiB referral rows pack three to a page);
    /// each writer checkpoints at 16 MB of log, counted in its own file's pages.
    @Test func eachStoreGetsItsPageSizeAndOldFilesKeepTheirs() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-storage-\(UUID().uuidString)")
        let store = try BrokerStore(directory: directory.appendingPathComponent("broker"), durability: .full)
        let ledger = try Ledger(directory: directory.appendingPathComponent("adapter"), agency: "rsud-embung-fatimah", durability: .full, clock: SystemClock(),
                                sealer: Network.sealer("rsud-embung-fatimah"))
        for (pool, size) in [(store.pool, 4096), (ledger.pool, 8192)] {
            #expect(try pool.read { try Int.fetchOne($0, sql: "PRAGMA page_size") } == size)
            #expect(try pool.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") } == "wal")
            #expect(try pool.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA wal_autocheckpoint") } == DurableDatabase.walCheckpointBytes / size)
        }

        // A store made before, with pages of another size, opens as it is, its rows intact:
        // SQLite cannot change a WAL database's page size in place, and nothing here tries.
        let url = directory.appendingPathComponent("old.sqlite")
        let old = try DatabaseQueue(path: url.path)
        try old.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL); INSERT INTO t VALUES ('kept')")
        }
        try old.close()
        let reopened = try DurableDatabase.open(url, durability: .full, label: "test", what: "test store", pageSize: .small)
        #expect(try reopened.read { try Int.fetchOne($0, sql: "PRAGMA page_size") } == 16384)
        #expect(try reopened.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA wal_autocheckpoint") } == DurableDatabase.walCheckpointBytes / 16384,
                "the threshold is in the file's own pages")
        #expect(try reopened.read { try String.fetchOne($0, sql: "SELECT id FROM t") } == "kept")
        try reopened.write { try $0.execute(sql: "INSERT INTO t VALUES ('new')") }
        #expect(try reopened.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM t") } == 2)
    }

    /// The statements SQLite compiles to insert or update a row of any table in either store,
    /// each opcode by name: a CHECK or a partial index on a list of three or more values built
    /// a temporary B-tree (`OpenEphemeral`) on every insert (SchemaRewrite).
    func constraintOpcodes(_ db: Database) throws -> [String: [String]] {
        var opcodes: [String: [String]] = [:]
        for table in try String.fetchAll(db, sql: "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'grdb_%'") {
            let info = try Row.fetchAll(db, sql: "PRAGMA table_info(\(table))")
            let columns: [String] = info.map { $0["name"] }
            let key = info.first { $0["pk"] as Int == 1 }.map { $0["name"] as String } ?? "rowid"
            // Values bound as the stores bind theirs: SQLite folds a constant into the check.
            var statements = [("INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))", columns.count)]
            for column in columns { statements.append(("UPDATE \(table) SET \(column) = ? WHERE \(key) = ?", 2)) }
            for (statement, count) in statements {
                let arguments = StatementArguments(Array(repeating: DatabaseValue.null, count: count))
                opcodes[statement] = try Row.fetchAll(db, sql: "EXPLAIN " + statement, arguments: arguments).map { $0["opcode"] }
            }
        }
        return opcodes
    }

    @Test func noStatementBuildsATemporaryTableForAConstraintAndOldFilesAreRewrittenInPlace() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-storage-\(UUID().uuidString)")
        // Files made before the rewrite: the migrations up to it, and a row in each table the
        // rewrite touches.
        let oldBroker = directory.appendingPathComponent("broker/broker.sqlite"), oldLedger = directory.appendingPathComponent("adapter/ledger.sqlite")
        for url in [oldBroker, oldLedger] { try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true) }
        let broker = try DatabaseQueue(path: oldBroker.path)
        try BrokerStore.migrator.migrate(broker, upTo: "v5-audit")
        try broker.write { db in
            try db.execute(sql: """
                INSERT INTO message (id, kind, referral_id, author, payload, stored_at) VALUES ('m1', 'referral', 'm1', 'polda-kepri', X'00', 't');
                INSERT INTO handoff (id, case_ref, from_agency, to_agency, service, priority, province, regency, status, created_at, due_receive, due_respond, due_complete, updated_at)
                    VALUES ('m1', 'c', 'polda-kepri', 'rsud-embung-fatimah', 'medical_care', 'routine', 'ID-KR', 'Batam', 'requested', 't', 't', 't', 't', 't');
                """)
        }
        #expect(try broker.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM sqlite_schema WHERE sql LIKE '%kind IN (''referral'', ''event'', ''escalation'')%'") } == 1)
        try broker.close()
        let ledger = try DatabaseQueue(path: oldLedger.path)
        try Ledger.migrator(atRest: Network.sealer("lpsk").atRest).migrate(ledger, upTo: "v4-sealed")
        try ledger.write { db in
            try db.execute(sql: """
                INSERT INTO referral (id, direction, case_ref, from_agency, to_agency, service, priority, province, regency, reason, status, delivery,
                    created_at, due_receive, due_respond, due_complete, updated_at, raw) VALUES
                    ('r1', 'inbound', 'c', 'a', 'b', 's', 'p', 'ID-KR', 'Batam', 'x', 'completed', 'received', 't', 't', 't', 't', '2026-01-01', X'00');
                INSERT INTO outbox (message_id, kind, referral_id, payload, created_at) VALUES ('o1', 'escalate', 'r1', X'00', 't');
                """)
        }
        try ledger.close()

        let store = try BrokerStore(directory: oldBroker.deletingLastPathComponent(), durability: .full)
        let reopened = try Ledger(directory: oldLedger.deletingLastPathComponent(), agency: "lpsk", durability: .full, clock: SystemClock(), sealer: Network.sealer("lpsk"))
        for pool in [store.pool, reopened.pool] {
            // On the writer: SQLite leaves CHECK constraints out of what a read-only connection compiles.
            let opcodes = try pool.writeWithoutTransaction(constraintOpcodes)
            #expect(opcodes.count > 40)
            for (statement, codes) in opcodes {
                #expect(!codes.contains("OpenEphemeral"), "\(statement) builds a temporary table")
            }
            #expect(try pool.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") } == "ok")
        }
        // A status change writes the handoff's row and no index: the agency indexes hold the
        // agency alone since v7, so a referral's received/accepted/… leave them as they are.
        let statusChange = try store.pool.writeWithoutTransaction { db in
            try Row.fetchAll(db, sql: "EXPLAIN UPDATE handoff SET status = ?, updated_at = ? WHERE id = ?", arguments: ["received", "t", "m1"]).map { $0["opcode"] as String }
        }
        // One B-tree opened for writing, the table's own (a WITHOUT ROWID row is rewritten by an
        // IdxInsert into it); with the status in the agency indexes, three, and two IdxDeletes.
        #expect(statusChange.filter { $0 == "OpenWrite" }.count == 1 && !statusChange.contains("IdxDelete"), "\(statusChange)")
        for (index, column, agency) in [("handoff_from", "from_agency", "polda-kepri"), ("handoff_to", "to_agency", "rsud-embung-fatimah")] {
            #expect(try store.pool.read { try String.fetchAll($0, sql: "SELECT id FROM handoff INDEXED BY \(index) WHERE \(column) = ?", arguments: [agency]) } == ["m1"],
                    "the rebuilt \(index) holds the handoff stored before it")
        }
        #expect(try store.pool.read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'handoff' AND sql LIKE '%status%'") } == [])
        // The rows are there, and the constraints still refuse what they refused.
        #expect(try store.pool.read { try String.fetchOne($0, sql: "SELECT kind FROM message WHERE id = 'm1'") } == "referral")
        #expect(throws: DatabaseError.self) {
            try store.pool.write { try $0.execute(sql: "INSERT INTO message (id, kind, referral_id, author, payload, stored_at) VALUES ('m2', 'other', 'm2', 'a', X'00', 't')") }
        }
        #expect(throws: DatabaseError.self) { try reopened.pool.write { try $0.execute(sql: "UPDATE referral SET delivery = 'lost' WHERE id = 'r1'") } }
        #expect(throws: DatabaseError.self) { try reopened.pool.write { try $0.execute(sql: "UPDATE outbox SET kind = 'other' WHERE message_id = 'o1'") } }
        try reopened.pool.write { try $0.execute(sql: "UPDATE referral SET delivery = 'refused' WHERE id = 'r1'") }
        // The index made in place of `referral_closed` holds what was closed before it: the purge,
        // whose query names the index, finds the handoff once its outbox message is committed.
        try reopened.pool.write { try $0.execute(sql: "UPDATE outbox SET committed_at = 't' WHERE message_id = 'o1'") }
        #expect(try reopened.purge(closedBefore: Date()).purged == 1)

        // A schema that is not the one a rewrite was written for is refused and left as it was.
        let other = try DatabaseQueue(path: directory.appendingPathComponent("other.sqlite").path)
        try other.write { try $0.execute(sql: "CREATE TABLE message (kind TEXT CHECK (kind IN ('a', 'b', 'c')))") }
        let before = try other.read { try String.fetchOne($0, sql: "SELECT sql FROM sqlite_schema") }
        #expect(throws: RujukError.self) {
            try other.write { try SchemaRewrite.replaceInTable($0, "message", "CHECK (kind IN ('referral', 'event', 'escalation'))", with: "CHECK (0)") }
        }
        #expect(try other.read { try String.fetchOne($0, sql: "SELECT sql FROM sqlite_schema") } == before)

        // A file made now has the same schema as one rewritten.
        let fresh = try BrokerStore(directory: directory.appendingPathComponent("fresh-broker"), durability: .full)
        let freshLedger = try Ledger(directory: directory.appendingPathComponent("fresh-adapter"), agency: "lpsk", durability: .full, clock: SystemClock(),
                                     sealer: Network.sealer("lpsk"))
        let schema = "SELECT type, name, sql FROM sqlite_schema ORDER BY name"
        #expect(try fresh.pool.read { try Row.fetchAll($0, sql: schema) } == store.pool.read { try Row.fetchAll($0, sql: schema) })
        #expect(try freshLedger.pool.read { try Row.fetchAll($0, sql: schema) } == reopened.pool.read { try Row.fetchAll($0, sql: schema) })
    }

    @Test func theLogStaysBoundedUnderSteadyWrites() throws {
        let pool = try scratch()
        #expect(try pool.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA journal_size_limit") } == DurableDatabase.walSizeLimit)
        let checkpointer = try Checkpointer(URL(fileURLWithPath: pool.path), interval: 0.02)
        checkpointer.start()
        defer { checkpointer.stop() }
        // 96 MB in transactions of 256 KB, one after another, the checkpointer copying beside
        // them: the log starts over at the writer's threshold instead of growing with the data.
        let wal = pool.path + "-wal"
        var largest = 0
        let row = [UInt8](repeating: 7, count: 4096)
        let statements = PreparedStatements()
        for batch in 0..<384 {
            try pool.write { db in
                for index in 0..<64 { try db.run(statements, "INSERT INTO t (id, data) VALUES (?, ?)", .text("\(batch)-\(index)"), .blob(row)) }
            }
            largest = max(largest, (try FileManager.default.attributesOfItem(atPath: wal)[.size] as? Int) ?? 0)
        }
        // The space a store's log may take beside it, on a disk sized for the data. With the
        // writer's threshold at 80 MB, as before 2026-12-01, it reached 83 MB here.
        #expect(largest < 40_000_000, "the WAL reached \(largest) bytes")
        #expect(try pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM t") } == 384 * 64)
    }

    @Test func checkpointerCopiesTheLogBesideTheWriter() throws {
        let pool = try scratch()
        let writerThreshold = try pool.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA wal_autocheckpoint") }
        #expect(writerThreshold == DurableDatabase.walCheckpointBytes / DurableDatabase.PageSize.large.rawValue, "the writer checkpoints at its own threshold")
        let statements = PreparedStatements()
        try pool.write { db in
            for index in 0..<2000 { try db.run(statements, "INSERT INTO t (id, data) VALUES (?, ?)", .text("\(index)"), .blob([UInt8](repeating: 7, count: 500))) }
        }
        let checkpointer = try Checkpointer(URL(fileURLWithPath: pool.path))
        let result = try checkpointer.checkpoint()
        #expect(result.log > 0 && result.copied == result.log, "every frame copied: no reader holds an old snapshot")
        checkpointer.stop()
        #expect(try pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM t") } == 2000)
    }
}

import CSQLiteTuning
import Foundation
import GRDB
import RujukCore

/// Opening the broker's store and an adapter's ledger the same way: WAL, the configured
/// `synchronous` level on the writer, and checkpoints mostly off the writer's thread.
public enum DurableDatabase {
    /// WAL bytes after which the writer checkpoints by itself, at the end of a commit: 16 MB,
    /// in pages of the file's own size (`PRAGMA wal_autocheckpoint` counts pages).
    ///
    /// The `Checkpointer` copies the log back beside the writer, but under steady load it
    /// never lets the log start over: SQLite rewinds the WAL only at a write transaction that
    /// begins with every frame copied, and a PASSIVE checkpoint from another connection is
    /// always overtaken by the next commit. Left to it, the WAL grew to whatever this was —
    /// 80 MB, measured at 11,000 referrals/s — and kept that space: on the fault suite's 96 MB
    /// disk the log and the store together filled it, and once the filler was gone the broker's
    /// own WAL filled it again, for good (the checkpoint that would free it must grow the file).
    /// Run by the writer between its own transactions, a checkpoint copies every frame the
    /// checkpointer has not yet (a fraction of a second's worth) and the next transaction writes
    /// the log from its start. Measured at 16 against 80 MB: throughput and latency the same
    /// within the noise (`rujuk bench`, docs/performance.md), the WAL never past 21 MB.
    public static let walCheckpointBytes = 16_000_000

    /// What the WAL file is cut back to when the log starts over after it grew past it (a
    /// reader that held an old snapshot for long, a burst), so its space is not kept for good.
    public static let walSizeLimit = 2 * walCheckpointBytes

    /// The page size of a file created here, chosen by what the file holds (an existing file
    /// keeps its own: SQLite cannot change a WAL database's page size in place).
    ///
    /// Every commit writes each page it touched to the WAL in full, and again to the file at
    /// the checkpoint. Under light load a commit carries a message or two and touches a dozen
    /// B-trees, a page each, so the page size is what a small commit costs; in a large group
    /// the rows fill the pages and the size decides how much of each is left empty.
    public enum PageSize: Int, Sendable {
        /// The broker's store: three small commits per referral under light load (its REFER
        /// and two receipts), rows of at most ~1.6 KiB. Measured at 1,000 referrals/s offered:
        /// a quarter fewer bytes to the disk than with 8 KiB pages; latency, and throughput at
        /// saturation, the same within the noise (docs/performance.md).
        case small = 4096
        /// An adapter's ledger: a referral row (the sealed referral as it travelled and the
        /// opened body, ~2.5 KiB) fills a 4 KiB page once, leaving a third of it empty; three
        /// fit in 8 KiB. CPU per referral at saturation −8% against 4 KiB.
        case large = 8192
    }

    /// Process-wide settings, made once before the first connection (see sqlite_tuning.c).
    /// SQLITE_MISUSE means another library opened a connection first: harmless, only slower.
    private static let tuned: Int32 = rujuk_sqlite_tune()

    /// Opens (creating if needed) a WAL database at `url`.
    ///
    /// A file that is not an SQLite database, or is corrupt where SQLite looks first, is refused
    /// with `storage_unavailable` naming `what` and the path, and is left untouched.
    public static func open(_ url: URL, durability: Durability, label: String, what: String, pageSize: PageSize) throws -> DatabasePool {
        _ = tuned
        try PrivateFiles.makeDirectory(url.deletingLastPathComponent())
        try PrivateFiles.createFile(url)
        try checkHeader(url, what)
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(10)
        configuration.label = label
        // Takes effect only while the file is empty, i.e. before the first write makes it.
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA page_size = \(pageSize.rawValue)") }
        do {
            let pool = try DatabasePool(path: url.path, configuration: configuration)
            // DatabasePool sets synchronous=NORMAL on its writer by itself; set ours after it.
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = \(durability == .full ? "FULL" : "NORMAL")")
                // In the file's own pages: an older file may have pages of another size.
                let filePageSize = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? pageSize.rawValue
                try db.execute(sql: "PRAGMA wal_autocheckpoint = \(walCheckpointBytes / filePageSize)")
                try db.execute(sql: "PRAGMA journal_size_limit = \(walSizeLimit)")
                // Reading the schema makes SQLite parse the header and the schema pages, so a
                // file that is not a database, or is truncated there, is refused here.
                _ = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sqlite_master")
            }
            return pool
        } catch let error as DatabaseError {
            throw failure(url, what, error)
        }
    }

    /// Opens the database, brings its schema up to date with `migrator`, and starts its
    /// background checkpointer; what the broker's store and every ledger do to open.
    public static func open(_ url: URL, durability: Durability, label: String, what: String, pageSize: PageSize, migrator: DatabaseMigrator) throws -> (pool: DatabasePool, checkpointer: Checkpointer) {
        let pool = try open(url, durability: durability, label: label, what: what, pageSize: pageSize)
        let checkpointer: Checkpointer
        do {
            try migrator.migrate(pool)
            checkpointer = try Checkpointer(url)
        } catch let error as DatabaseError {
            throw failure(url, what, error)
        }
        checkpointer.start()
        return (pool, checkpointer)
    }

    /// Closes a database opened here, at a clean stop: the checkpointer stops, the writer
    /// copies the whole log into the file and empties it (a TRUNCATE checkpoint), then every
    /// connection closes. Returns false, with everything still safe in the WAL, when a reader
    /// kept the log from emptying.
    ///
    /// Closing the pool alone would not do it: SQLite empties the log only when the last
    /// connection closes, and GRDB closes the writer first, then its readers, which are
    /// read-only and may not. A file closed here stands alone — a copy of it is whole — and its
    /// next open can check its length against its header (`checkHeader`). The writer's
    /// `statements` are finalized first: a connection with statements left does not close.
    @discardableResult
    public static func close(_ pool: DatabasePool, checkpointer: Checkpointer, statements: PreparedStatements) throws -> Bool {
        checkpointer.stop()
        let busy = try pool.writeWithoutTransaction { db in
            statements.removeAll()
            return try Int.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") ?? 1
        }
        try pool.close()
        return busy == 0
    }

    /// Refuses a file that is shorter than its own header says. SQLite notices a truncated
    /// file only when it reads a missing page — possibly long after start, in the middle of
    /// routing — so a copy cut short (a full disk during a restore, a partial rsync) is caught
    /// here, before anything is written to it (when no WAL is beside it). The header's page count is trusted only when
    /// SQLite marks it valid (its "version-valid-for" number equals the change counter).
    static func checkHeader(_ url: URL, _ what: String) throws {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { return }
        defer { try? handle.close() }
        let header = [UInt8](handle.readData(ofLength: 100))
        guard !header.isEmpty else { return }
        func refuse(_ reason: String) -> RujukError {
            RujukError(.storageUnavailable, "cannot open the \(what) \(url.path): \(reason) — the file was left as it is; restore it from a backup")
        }
        guard header.count == 100, header.starts(with: Array("SQLite format 3\0".utf8)) else {
            throw refuse("it is not an SQLite database (its header is wrong)")
        }
        func bigEndian(_ offset: Int) -> UInt64 { header[offset..<offset + 4].reduce(0) { $0 << 8 | UInt64($1) } }
        let rawPageSize = UInt64(header[16]) << 8 | UInt64(header[17])
        let pageSize = rawPageSize == 1 ? 65_536 : rawPageSize
        let pages = bigEndian(28)
        guard bigEndian(92) == bigEndian(24), pages > 0 else { return }
        // With a WAL beside it the file may be legitimately short: a checkpoint writes page 1
        // (and its new page count) before the pages past the end, and one cut by kill -9 is
        // finished from the WAL at the next open.
        let wal = (try? FileManager.default.attributesOfItem(atPath: url.path + "-wal")[.size] as? UInt64) ?? 0
        guard wal == 0 else { return }
        let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? UInt64) ?? 0
        if size < pages * pageSize {
            throw refuse("it is truncated: its header says \(pages * pageSize) bytes, the file has \(size)")
        }
    }

    private static func failure(_ url: URL, _ what: String, _ error: DatabaseError) -> RujukError {
        RujukError(.storageUnavailable, "cannot open the \(what) \(url.path): \(error.message ?? "\(error.resultCode)") — the file was left as it is")
    }
}

extension DatabasePool {
    /// The synchronous level of the writer connection: 2 is FULL, 1 NORMAL.
    public func synchronousLevel() throws -> Int {
        try writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }
}

/// Copies the WAL back into the database file on a connection and a thread of its own.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses the threshold, on the
/// writer's thread: the broker's router would stop routing while megabytes are copied and the
/// database file is fsynced. A PASSIVE checkpoint from another connection runs beside the
/// writer instead and never blocks it; what it cannot copy yet (pages a reader still needs) it
/// copies on a later round. The writer's own checkpoint, at `walCheckpointBytes`, is left
/// only the last frames, and rewinds the log.
public final class Checkpointer: @unchecked Sendable {
    private let queue: DatabaseQueue
    private let interval: TimeInterval
    private let stopSignal = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let stopping = Locked(false)
    private let started = Locked(false)

    public init(_ url: URL, interval: TimeInterval = 0.2) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "rujuk.checkpointer"
        queue = try DatabaseQueue(path: url.path, configuration: configuration)
        self.interval = interval
    }

    public func start() {
        guard !started.withLock({ let was = $0; $0 = true; return was }) else { return }
        let thread = Thread { [self] in
            // Waiting on the stop signal with a timeout is the pacing: a round every `interval`.
            while stopSignal.wait(timeout: .now() + interval) == .timedOut, !stopping.current {
                _ = try? checkpoint()
            }
            finished.signal()
        }
        thread.name = "rujuk.checkpointer"
        thread.start()
    }

    /// One PASSIVE checkpoint; returns (frames in the WAL, frames copied).
    @discardableResult
    public func checkpoint() throws -> (log: Int, copied: Int) {
        try queue.writeWithoutTransaction { db in
            let row = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(PASSIVE)")
            return (row?[1] ?? 0, row?[2] ?? 0)
        }
    }

    public func stop() {
        guard !stopping.withLock({ let was = $0; $0 = true; return was }) else { return }
        if started.current {
            stopSignal.signal()
            finished.wait()
        }
        try? queue.close()
    }
}

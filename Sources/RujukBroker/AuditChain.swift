import Crypto
import Foundation
import GRDB
import RujukCore

/// The broker's audit log: the feed table (every handoff transition and escalation, in commit
/// order, numbered by a gap-free `seq`), each row sealed into a hash chain.
///
/// A row's `hash` is SHA-256 over the previous row's hash and the row's own content (its feed
/// columns and the handoff's fixed envelope: agencies, service, priority, province, consent);
/// `prev_hash` repeats the previous hash as the writer saw it. Rows are written in the group
/// commit's transaction, so the chain and the store never disagree after a crash.
///
/// `verify` walks the chain and names the first row that was edited (its hash does not match
/// its content), deleted (a gap in `seq`), or moved (its `prev_hash` is not its predecessor's
/// hash). Deleting the newest rows leaves no gap to find, and whoever can write the store can
/// recompute every hash after a row it edited: `check(_:against:)` compares the chain with
/// the checkpoints the broker signed and the adapters kept (Protocols/RRP.md section 4.13).
public enum AuditChain {
    public static let genesis = [UInt8](repeating: 0, count: 32)

    /// The text a row's hash covers, built the same way when writing and when verifying.
    static func content(seq: Int64, kind: String, referralID: String, messageID: String, status: String, by: String,
                        overdue: String?, level: Int64?, notice: String?, clock: String?, targets: String?, at: String,
                        from: String, to: String, service: String, priority: String, province: String, consent: String) -> [UInt8] {
        let fields: [String] = [
            "rujuk-audit/1", String(seq), kind, referralID, messageID, status, by, overdue ?? "", level.map(String.init) ?? "",
            notice ?? "", clock ?? "", targets ?? "", at, from, to, service, priority, province, consent,
        ]
        // The fields joined by U+001F, appended straight into one buffer: two feed rows per
        // referral are hashed on the group commit.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(fields.reduce(fields.count) { $0 + $1.utf8.count })
        for (index, field) in fields.enumerated() {
            if index > 0 { bytes.append(0x1F) }
            bytes.append(contentsOf: field.utf8)
        }
        return bytes
    }

    static func link(_ previous: [UInt8], _ content: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: previous)
        hasher.update(data: content)
        return Array(hasher.finalize())
    }

    /// The newest row's seq and hash (0 and the genesis value for an empty log).
    static func newest(_ db: Database) throws -> (records: Int64, hash: [UInt8]) {
        let sql = "SELECT seq, hash FROM feed WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1"
        guard let row = try Row.fetchOne(db, sql: sql) else { return (0, genesis) }
        return (row[0], [UInt8](row[1] as Data))
    }

    /// What `verify` found.
    public struct Report: Sendable, Equatable {
        public enum Problem: Sendable, Equatable {
            /// The row's content no longer matches its hash.
            case edited(seq: Int64)
            /// Rows are missing before this one (`seq` jumps from `after`).
            case deleted(after: Int64, next: Int64)
            /// The row is intact but does not follow its predecessor: moved, or a row before it
            /// was replaced wholesale.
            case reordered(seq: Int64)
        }

        /// Rows checked.
        public var records: Int
        /// The hash of the last row checked.
        public var head: String
        /// The first problem, if any; checking stops there.
        public var problem: Problem?

        public var description: String {
            switch problem {
            case nil: "audit log intact: \(records) records, head \(head)"
            case .edited(let seq)?: "audit log BROKEN at record \(seq): edited (its content does not match its hash)"
            case .deleted(let after, let next)?: "audit log BROKEN after record \(after): records \(after + 1)…\(next - 1) deleted"
            case .reordered(let seq)?: "audit log BROKEN at record \(seq): out of order (it does not follow the record before it)"
            }
        }
    }

    /// Checks the whole chain, oldest first, streaming (a million rows need no more memory
    /// than one).
    public static func verify(_ db: Database) throws -> Report {
        var report = Report(records: 0, head: hex(genesis))
        var previous = genesis
        var previousSeq: Int64 = 0
        let cursor = try Row.fetchCursor(db, sql: """
            SELECT f.seq, f.kind, f.referral_id, f.message_id, f.status, f.by_agency, f.overdue, f.level, f.notice, f.clock, f.targets, f.at,
                   f.prev_hash, f.hash, h.from_agency, h.to_agency, h.service, h.priority, h.province, h.consent
            FROM feed f LEFT JOIN handoff h ON h.id = f.referral_id ORDER BY f.seq
            """)
        while let row = try cursor.next() {
            let seq: Int64 = row[0]
            let storedHash = (row[13] as Data?).map { [UInt8]($0) }
            let storedPrev = (row[12] as Data?).map { [UInt8]($0) }
            if report.records > 0 && seq != previousSeq + 1 {
                report.problem = .deleted(after: previousSeq, next: seq)
                return report
            }
            let content = Self.content(
                seq: seq, kind: row[1], referralID: row[2], messageID: row[3], status: row[4], by: row[5], overdue: row[6], level: row[7],
                notice: row[8], clock: row[9], targets: row[10], at: row[11], from: row[14] ?? "", to: row[15] ?? "", service: row[16] ?? "",
                priority: row[17] ?? "", province: row[18] ?? "", consent: row[19] ?? "")
            guard let storedHash, let storedPrev, storedHash == link(storedPrev, content) else {
                report.problem = .edited(seq: seq)
                return report
            }
            if storedPrev != previous {
                // The first row may follow rows deleted from the start of the log.
                report.problem = report.records == 0 && seq > 1 ? .deleted(after: 0, next: seq) : .reordered(seq: seq)
                return report
            }
            previous = storedHash
            previousSeq = seq
            report.records += 1
        }
        report.head = hex(previous)
        return report
    }

    /// What `check(_:against:)` found.
    public struct CheckpointReport: Sendable, Equatable {
        public enum Problem: Sendable, Equatable {
            /// The record a checkpoint names has another hash now: it, or a record before it,
            /// was changed after the checkpoint was signed. `after` is the newest record a
            /// checkpoint still vouches for (0 if none), so the change lies between the two.
            case rewritten(records: Int64, signedAt: Date, after: Int64)
            /// The record a checkpoint names is gone: the log was cut back.
            case missing(records: Int64, signedAt: Date)
        }

        /// Checkpoints whose record is there with the hash they name.
        public var matched: Int
        /// The first problem, oldest checkpoint first; checking stops there.
        public var problem: Problem?

        public var description: String {
            switch problem {
            case nil:
                "checkpoints: all \(matched) match the audit log"
            case .rewritten(let records, let at, let after)?:
                "history rewritten at or before record \(records) (checkpoint signed at \(Timestamp.format(at)))"
                    + (after > 0 ? "; records up to \(after) match an earlier checkpoint" : "")
            case .missing(let records, let at)?:
                "history truncated: record \(records) is missing (checkpoint signed at \(Timestamp.format(at)))"
            }
        }
    }

    /// Checks that the record each checkpoint names exists and has the hash it names. The
    /// checkpoints' signatures must have been checked already: this trusts what they say.
    public static func check(_ db: Database, against checkpoints: [Checkpoint]) throws -> CheckpointReport {
        var report = CheckpointReport(matched: 0)
        var vouched: Int64 = 0
        let statement = try db.makeStatement(sql: "SELECT hash FROM feed WHERE seq = ?")
        for checkpoint in checkpoints.sorted(by: { $0.records < $1.records }) {
            guard let hash = try Data.fetchOne(statement, arguments: [checkpoint.records]) else {
                report.problem = .missing(records: checkpoint.records, signedAt: checkpoint.at)
                return report
            }
            guard hex([UInt8](hash)) == checkpoint.head else {
                report.problem = .rewritten(records: checkpoint.records, signedAt: checkpoint.at, after: vouched)
                return report
            }
            vouched = checkpoint.records
            report.matched += 1
        }
        return report
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}

import Foundation
import GRDB
import RujukCore

/// The personal part of each referral (`referral.body`) sealed under the agency's `AtRestKey`,
/// opened only where a view returns it.
extension Ledger {
    /// The migration that seals the personal part at rest: the table holding the key's check
    /// value, and every body stored in the clear sealed in place, a thousand rows at a time.
    /// `secure_delete` comes first, so the plaintext a sealed body replaces is overwritten, not
    /// left in its page's free space.
    static func sealBodiesAtRest(_ db: Database, _ atRest: AtRestKey) throws {
        try db.execute(sql: "PRAGMA secure_delete = ON")
        try db.execute(sql: """
            CREATE TABLE ledger_key (
                id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
                key_check BLOB NOT NULL
            );
            """)
        try db.execute(sql: "INSERT INTO ledger_key (id, key_check) VALUES (1, ?)",
                       arguments: [Data(atRest.check)])
        var after: Int64 = 0
        while true {
            let rows = try Row.fetchAll(db, sql: """
                SELECT rowid, id, body FROM referral WHERE body IS NOT NULL AND rowid > ? ORDER BY rowid LIMIT 1000
                """, arguments: [after])
            guard let last = rows.last else { return }
            for row in rows {
                let rowid: Int64 = row[0], id: String = row[1], body: Data = row[2]
                let sealed = Data(atRest.seal([UInt8](body), row: id))
                try db.execute(sql: "UPDATE referral SET body = ? WHERE rowid = ?", arguments: [sealed, rowid])
            }
            after = last[0]
        }
    }

    /// The migration that seals the words of each status change (`event.note`) the same way,
    /// moving them out of the `reason` and `outcome` columns where they were kept in the clear.
    static func sealNotesAtRest(_ db: Database, _ atRest: AtRestKey) throws {
        try db.execute(sql: "PRAGMA secure_delete = ON")
        try db.execute(sql: "ALTER TABLE event ADD COLUMN note BLOB")
        var after: Int64 = 0
        while true {
            let rows = try Row.fetchAll(db, sql: """
                SELECT seq, id, reason, outcome FROM event WHERE (reason IS NOT NULL OR outcome IS NOT NULL) AND seq > ? ORDER BY seq LIMIT 1000
                """, arguments: [after])
            guard let last = rows.last else { return }
            for row in rows {
                let note = UpdateNote(reason: row["reason"], outcome: row["outcome"])
                let sealed = Data(atRest.seal(JSONCoding.encode(note), row: row["id"]))
                try db.execute(sql: "UPDATE event SET note = ?, reason = NULL, outcome = NULL WHERE seq = ?", arguments: [sealed, row["seq"] as Int64])
            }
            after = last["seq"]
        }
    }

    /// Refuses a ledger written under another key than `atRest`: none of its bodies would open,
    /// and new ones would be written under a second key.
    static func checkKey(_ pool: DatabasePool, _ atRest: AtRestKey, _ url: URL) throws {
        let check = try pool.read { try Data.fetchOne($0, sql: "SELECT key_check FROM ledger_key") }
        guard let check, atRest.opens(check: [UInt8](check)) else {
            throw RujukError(.sealInvalid, "\(url.path) was written under another agency key than this one; "
                             + "start with the agency.key it was made with")
        }
    }

    /// The stored words of a status change, opened and decoded.
    func openNote(_ stored: [UInt8], event id: String) throws -> UpdateNote {
        let json = try sealer.atRest.open(stored, row: id)
        return try JSONCoding.decode(UpdateNote.self, from: json, what: "the ledger's note")
    }

    /// A stored personal part opened and decoded; one that does not open or decode is an
    /// error, never a view without it.
    func openBody(_ stored: [UInt8], referral id: String) throws -> ReferralBody {
        let json = try sealer.atRest.open(stored, row: id)
        return try JSONCoding.decode(ReferralBody.self, from: json, what: "the ledger's personal data")
    }
}

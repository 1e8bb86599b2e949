import Foundation
import GRDB
import RujukCore

/// Clears the free text an RRP/1 store holds: reasons and outcomes in words, regencies by name.
/// RRP/2's envelope carries codes only, so that nothing an agency types reaches the broker;
/// what an older broker stored is replaced by the code `other` (or, for a regency, removed) in
/// every row and in every stored message, and overwritten where it lay (`secure_delete`).
enum LegacyFreeText {
    static func clear(_ db: Database) throws {
        try db.execute(sql: "PRAGMA secure_delete = ON")
        let closing = ClosingReason.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
        let outcomes = Outcome.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
        try db.execute(sql: """
            UPDATE handoff SET regency = '' WHERE regency NOT GLOB '[0-9][0-9].[0-9][0-9]';
            UPDATE handoff_event SET reason = 'other' WHERE reason IS NOT NULL AND reason NOT IN (\(closing));
            UPDATE handoff_event SET outcome = 'other' WHERE outcome IS NOT NULL AND outcome NOT IN (\(outcomes));
            """)
        // Stored messages, a page at a time by id: each REFER and UPDATE body rewritten with its
        // words replaced, the rest of it as it was.
        var after = ""
        while true {
            let page = try Row.fetchAll(db, sql: "SELECT id, kind, payload FROM message WHERE id > ? AND (kind = 'referral' OR kind = 'event') ORDER BY id LIMIT 1000",
                                        arguments: [after])
            guard let last = page.last else { break }
            after = last["id"]
            for row in page {
                let payload: Data = row["payload"]
                guard let rewritten = try rewrite(payload, kind: row["kind"]), rewritten != payload else { continue }
                try db.execute(sql: "UPDATE message SET payload = ? WHERE id = ?", arguments: [rewritten, row["id"] as String])
            }
        }
    }

    /// The body with its free text replaced, or nil when it is not a JSON object.
    static func rewrite(_ payload: Data, kind: String) throws -> Data? {
        guard var body = (try? JSONSerialization.jsonObject(with: payload)) as? [String: Any] else { return nil }
        func code<Code: RawRepresentable>(_ key: String, _: Code.Type) where Code.RawValue == String {
            if let value = body[key] as? String, Code(rawValue: value) == nil { body[key] = "other" }
        }
        if kind == DeliveryKind.referral.rawValue {
            code("reason", ReferralReason.self)
            if var location = body["location"] as? [String: Any] {
                if let regency = location["regency"] as? String, !ReferralValidation.isRegencyCode(regency) { location["regency"] = nil }
                body["location"] = location
            }
        } else {
            code("reason", ClosingReason.self)
            code("outcome", Outcome.self)
        }
        return try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])
    }
}

import Foundation

/// The broker's signed statement of its audit log at one moment: how many records it held and
/// the hash of the newest (Protocols/RRP.md section 4.13).
///
/// Adapters keep every checkpoint they are sent. A broker that later rewrites or cuts its log
/// cannot make the kept checkpoints agree with it without the signing key it used then, so
/// `rujuk audit verify --checkpoints` finds the rewrite that the chain alone cannot show.
public struct Checkpoint: Codable, Sendable, Equatable {
    /// The `seq` of the newest feed record; the log is gap-free, so also how many it holds.
    public var records: Int64
    /// That record's hash (`AuditChain`), 64 lowercase hexadecimal digits.
    public var head: String
    /// When the broker signed it.
    public var at: Date
    /// Ed25519 over `signedBytes` with the broker's sign key, standard base64 (64 bytes).
    public var signature: String

    public init(records: Int64, head: String, at: Date, signature: String) {
        self.records = records
        self.head = head
        self.at = at
        self.signature = signature
    }

    /// The domain tag, the first field signed: a signature over a checkpoint can never pass
    /// for one over anything else the broker's key might sign.
    public static let domain = "rujuk-checkpoint/1"

    /// What the signature covers: the domain tag, `records` in decimal, `head`, and `at` in
    /// UTC with three fraction digits, each length-prefixed (`LengthPrefixedFields`).
    public static func signedBytes(records: Int64, head: String, at: Date) -> [UInt8] {
        LengthPrefixedFields.encode([domain, String(records), head, Timestamp.format(at)], capacity: 128)
    }

    public var signedBytes: [UInt8] { Self.signedBytes(records: records, head: head, at: at) }

    /// Checks what JSON Schema says of a CHECKPOINT body; the signature itself needs the key.
    public func validate() throws {
        guard records >= 1 else { throw RujukError(.schemaViolation, "CHECKPOINT: 'records' must be at least 1") }
        guard Self.isHash(head) else {
            throw RujukError(.schemaViolation, "CHECKPOINT: 'head' must be 64 lowercase hexadecimal digits")
        }
        guard ReferralValidation.base64Length(signature) == 64 else {
            throw RujukError(.schemaViolation, "CHECKPOINT: 'signature' must be 64 bytes in base64")
        }
    }

    static func isHash(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}

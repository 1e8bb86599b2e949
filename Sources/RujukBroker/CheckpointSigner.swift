import Crypto
import Foundation
import RujukCore

/// Signs checkpoints of the audit log with the broker's Ed25519 key (`sign_secret` in its key
/// file); the adapters verify them with `broker_sign_key` (Protocols/RRP.md section 4.13).
public struct CheckpointSigner {
    private let key: Curve25519.Signing.PrivateKey

    /// The signer of a key file's `sign_secret`; nil when the file has none. A secret whose
    /// public half is not the file's `sign_public` is refused: adapters would refuse every
    /// checkpoint signed with it.
    public init?(_ keys: KeyFile) throws {
        guard let secret = keys.signSecret else { return nil }
        guard let raw = Data(base64Encoded: secret), let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            throw RujukError(.config, "the broker's key file has a sign_secret that is not an Ed25519 key")
        }
        guard key.publicKey.rawRepresentation.base64EncodedString() == keys.signPublic else {
            throw RujukError(.config, "the broker's key file has a sign_public that is not sign_secret's public key")
        }
        self.key = key
    }

    /// A checkpoint of the log whose newest record is `records`, with hash `head`, at `at`.
    public func sign(records: Int64, head: [UInt8], at: Date) throws -> Checkpoint {
        let hex = AuditChain.hex(head)
        // To the millisecond, as the wire carries it: the checkpoint kept is the one sent.
        let at = Timestamp.parse(Timestamp.format(at)) ?? at
        let signature = try key.signature(for: Checkpoint.signedBytes(records: records, head: hex, at: at))
        return Checkpoint(records: records, head: hex, at: at, signature: signature.base64EncodedString())
    }
}

import Crypto
import Foundation
import RujukCore

extension Checkpoint {
    /// Whether the broker whose sign key is `publicKey` (base64, `broker_sign_key`) signed this
    /// checkpoint as it stands. Adapters keep only checkpoints that pass, and `rujuk audit
    /// verify` trusts only those: anyone can write a JSON line, only the broker can sign one.
    public func isSigned(by publicKey: String) -> Bool {
        guard let raw = Data(base64Encoded: publicKey), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw),
              let signature = Data(base64Encoded: self.signature) else { return false }
        return key.isValidSignature(signature, for: signedBytes)
    }
}

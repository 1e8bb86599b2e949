@preconcurrency import Crypto
import Foundation
import RujukCore

/// The key an agency's ledger keeps personal data under at rest: the person, the consent record
/// and the notes of every referral it sent or received.
///
/// Derived (HKDF-SHA256) from the agency's seal secret, which lives in `agency.key` apart from
/// the ledger, so the ledger file, its WAL or a copy of either reveals nothing without that file.
/// Each value is sealed with ChaCha20-Poly1305 under a random nonce, with its row's id as the
/// associated data: a value copied onto another row does not open.
struct AtRestKey: @unchecked Sendable {
    private static let info = Data("rujuk ledger at rest v1".utf8)
    /// The row `check` is sealed for: no referral's id (those are UUIDv7s).
    private static let checkRow = "ledger-key"
    private let key: SymmetricKey

    init(sealSecret: Curve25519.KeyAgreement.PrivateKey) {
        let secret = SymmetricKey(data: sealSecret.rawRepresentation)
        key = HKDF<SHA256>.deriveKey(inputKeyMaterial: secret, info: Self.info, outputByteCount: 32)
    }

    /// `plaintext` sealed for the row `id`: nonce, ciphertext and tag.
    func seal(_ plaintext: [UInt8], row id: String) -> [UInt8] {
        // A 32-byte key and a random 12-byte nonce: nothing here can fail.
        Array(try! ChaChaPoly.seal(plaintext, using: key, authenticating: Data(id.utf8)).combined)
    }

    /// What `seal` sealed for the row `id`; `seal_invalid` for anything else: sealed under
    /// another key, copied from another row, or altered.
    func open(_ stored: [UInt8], row id: String) throws -> [UInt8] {
        do {
            let box = try ChaChaPoly.SealedBox(combined: stored)
            return Array(try ChaChaPoly.open(box, using: key, authenticating: Data(id.utf8)))
        } catch {
            throw RujukError(.sealInvalid, "the personal data of \(id) in the ledger does not open with this "
                             + "agency's key: written under another key, or altered")
        }
    }

    /// A value only this key opens, stored once in the ledger: an adapter started with another
    /// key is refused at once, instead of writing rows under two keys.
    var check: [UInt8] { seal([], row: Self.checkRow) }

    func opens(check: [UInt8]) -> Bool { (try? open(check, row: Self.checkRow)) != nil }
}

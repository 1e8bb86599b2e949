@preconcurrency import Crypto
import Foundation
import RujukCore
import ZeroMQ

/// Seals the personal part of a referral for its recipient, and opens what was sealed for us.
///
/// HPKE (RFC 9180) in auth mode with X25519, HKDF-SHA256 and ChaCha20-Poly1305: only the
/// recipient agency's private key opens it, and opening it proves it was sealed with the
/// sending agency's private key — so neither the broker nor anyone on the way can read it, nor
/// forge one in an agency's name. The envelope is the associated data
/// (`Referral.sealedAssociatedData`): change the route, the service or the consent claim and
/// it no longer opens.
public struct Sealer: @unchecked Sendable {
    static let info = Data("rujuk referral body v1".utf8)
    static var suite: HPKE.Ciphersuite { .Curve25519_SHA256_ChachaPoly }

    let agency: String
    /// Immutable once made, and used only through HPKE calls that do not mutate it.
    let privateKey: Curve25519.KeyAgreement.PrivateKey
    let registry: AgencyRegistry

    public init(agency: String, keys: KeyFile, registry: AgencyRegistry) throws {
        guard let secret = keys.sealSecret, let raw = Data(base64Encoded: secret) else {
            throw RujukError(.config, "the key file of '\(agency)' has no seal_secret; make one with `rujuk keygen --agency \(agency)`")
        }
        do {
            privateKey = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw)
        } catch {
            throw RujukError(.config, "the seal_secret of '\(agency)' is not an X25519 key")
        }
        if let listed = registry[agency]?.sealKey, listed != privateKey.publicKey.rawRepresentation.base64EncodedString() {
            throw RujukError(.config, "the key file of '\(agency)' does not match its seal_key in agencies.toml")
        }
        self.agency = agency
        self.registry = registry
    }

    private func publicKey(of agency: String) throws -> Curve25519.KeyAgreement.PublicKey {
        guard let text = registry[agency]?.sealKey, let raw = Data(base64Encoded: text),
              let key = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: raw) else {
            throw RujukError(.keyUnknown, "'\(agency)' has no seal_key in agencies.toml, so nothing can be sealed for it")
        }
        return key
    }

    /// Seals `body` for the referral's recipient; `referral.sealed` is ignored.
    public func seal(_ body: ReferralBody, for referral: Referral) throws -> SealedBody {
        var sender = try HPKE.Sender(recipientKey: publicKey(of: referral.to), ciphersuite: Self.suite, info: Self.info, authenticatedBy: privateKey)
        let ciphertext = try sender.seal(JSONCoding.encode(body), authenticating: referral.sealedAssociatedData)
        return SealedBody(enc: sender.encapsulatedKey.base64EncodedString(), ct: ciphertext.base64EncodedString())
    }

    /// Opens a referral sealed for this agency, checking it was sealed by `referral.from` for
    /// this very envelope; throws `seal_invalid` otherwise.
    public func open(_ referral: Referral) throws -> ReferralBody {
        let senderKey = try publicKey(of: referral.from)
        guard let enc = Data(base64Encoded: referral.sealed.enc), let ciphertext = Data(base64Encoded: referral.sealed.ct) else {
            throw RujukError(.sealInvalid, "the sealed part of \(referral.id) is not base64")
        }
        let plaintext: Data
        do {
            var recipient = try HPKE.Recipient(privateKey: privateKey, ciphersuite: Self.suite, info: Self.info, encapsulatedKey: enc, authenticatedBy: senderKey)
            plaintext = try recipient.open(ciphertext, authenticating: referral.sealedAssociatedData)
        } catch {
            throw RujukError(.sealInvalid, "the sealed part of \(referral.id) does not open: altered, sealed for another key, or not by '\(referral.from)'")
        }
        return try JSONCoding.decode(ReferralBody.self, from: [UInt8](plaintext), what: "the sealed part")
    }
}

extension KeyFile {
    /// A new key pair for `owner`: CurveZMQ always, and the sealing pair for an agency.
    public static func generate(owner: String, sealing: Bool) throws -> KeyFile {
        let curve = try CurveKeyPair.generate()
        guard sealing else { return KeyFile(owner: owner, curvePublic: curve.publicKey, curveSecret: curve.secretKey) }
        let seal = Curve25519.KeyAgreement.PrivateKey()
        return KeyFile(owner: owner, curvePublic: curve.publicKey, curveSecret: curve.secretKey,
                       sealPublic: seal.publicKey.rawRepresentation.base64EncodedString(),
                       sealSecret: seal.rawRepresentation.base64EncodedString())
    }
}

/// Keys made at start for a whole network, held in memory only: for `rujuk demo`, the
/// benchmark and the tests. A deployment makes its keys with `rujuk keygen` instead.
public struct EphemeralKeys: Sendable {
    public let broker: KeyFile
    public let agencies: [String: KeyFile]

    public init(for registry: AgencyRegistry) throws {
        broker = try KeyFile.generate(owner: "broker", sealing: false)
        var agencies: [String: KeyFile] = [:]
        for agency in registry.agencies { agencies[agency.id] = try KeyFile.generate(owner: agency.id, sealing: true) }
        self.agencies = agencies
    }

    /// The registry with these public keys in it, as agencies.toml would list them.
    public func apply(to registry: AgencyRegistry) -> AgencyRegistry {
        registry.withKeys(agencies.mapValues { (curve: $0.curvePublic, seal: $0.sealPublic) })
    }
}

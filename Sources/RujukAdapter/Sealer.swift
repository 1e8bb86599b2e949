@preconcurrency import Crypto
import Foundation
import RujukCore
import ZeroMQ

/// Seals the personal part of a referral for its recipient, and opens what was sealed for us.
///
/// HPKE (RFC 9180) in auth mode with X25519, HKDF-SHA256 and ChaCha20-Poly1305: only the
/// recipient agency's private key opens it, and opening it proves it was sealed with the
/// sending agency's private key — so neither the broker nor anyone on the way can read it, nor
/// forge one in an agency's name. The whole envelope is the associated data
/// (`Referral.sealedAssociatedData`): change any field of it and the seal no longer opens.
public struct Sealer: @unchecked Sendable {
    static let info = Data("rujuk referral body v1".utf8)
    static var suite: HPKE.Ciphersuite { .Curve25519_SHA256_ChachaPoly }

    let agency: String
    /// Immutable once made, and used only through HPKE calls that do not mutate it.
    let privateKey: Curve25519.KeyAgreement.PrivateKey
    /// Every agency's seal_key, parsed once.
    private let publicKeys: [String: Curve25519.KeyAgreement.PublicKey]
    /// Opens what was sealed for this agency, with each sender's static X25519 result
    /// computed once (RFC9180Opener).
    private let opener: RFC9180Opener

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
        var publicKeys: [String: Curve25519.KeyAgreement.PublicKey] = [:]
        for other in registry.agencies {
            if let text = other.sealKey, let raw = Data(base64Encoded: text), let key = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: raw) {
                publicKeys[other.id] = key
            }
        }
        self.publicKeys = publicKeys
        opener = try RFC9180Opener(privateKey: privateKey, senders: publicKeys, info: Self.info)
    }

    private func publicKey(of agency: String) throws -> Curve25519.KeyAgreement.PublicKey {
        guard let key = publicKeys[agency] else {
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
        _ = try publicKey(of: referral.from)
        guard let enc = Data(base64Encoded: referral.sealed.enc), let ciphertext = Data(base64Encoded: referral.sealed.ct) else {
            throw RujukError(.sealInvalid, "the sealed part of \(referral.id) is not base64")
        }
        let plaintext: [UInt8]
        do {
            plaintext = try opener.open(ciphertext, encapsulatedKey: enc, sender: referral.from, authenticating: referral.sealedAssociatedData)
        } catch {
            throw RujukError(.sealInvalid, "the sealed part of \(referral.id) does not open: altered, sealed for another key, or not by '\(referral.from)'")
        }
        return try JSONCoding.decode(ReferralBody.self, from: plaintext, what: "the sealed part")
    }
}

/// HPKE (RFC 9180) single-shot open in auth mode for DHKEM(X25519, HKDF-SHA256), HKDF-SHA256
/// and ChaCha20-Poly1305 — the suite `Sealer` seals with through swift-crypto's `HPKE.Sender`.
///
/// Written out here for one reason: auth mode's second Diffie-Hellman, DH(skR, pkS), is the same
/// for every referral from a given sender, and swift-crypto's `HPKE.Recipient` computes it again
/// each time. Caching it per sender halves the X25519 work of the costliest step a recipient
/// does per referral. The steps are RFC 9180's (§4.1 DHKEM AuthDecap, §5.1 KeySchedule, §5.2
/// Open with sequence number 0), on swift-crypto's X25519, SHA256 and ChaChaPoly; SealerTests
/// hold it to `HPKE.Recipient` on the same inputs, accepted and refused alike.
struct RFC9180Opener: @unchecked Sendable {
    private static let version = Array("HPKE-v1".utf8)
    /// "KEM" || I2OSP(0x0020, 2): DHKEM(X25519, HKDF-SHA256).
    private static let kemSuite = Array("KEM".utf8) + [0x00, 0x20]
    /// "HPKE" || kem 0x0020 || kdf 0x0001 (HKDF-SHA256) || aead 0x0003 (ChaCha20Poly1305).
    private static let hpkeSuite = Array("HPKE".utf8) + [0x00, 0x20, 0x00, 0x01, 0x00, 0x03]
    private static let modeAuth: UInt8 = 0x02

    // The labels of every step, "HPKE-v1" || suite_id || label, and for an expand the length
    // before them: built once rather than concatenated for each message.
    private static let eaePRKLabel = version + kemSuite + Array("eae_prk".utf8)
    private static let sharedSecretLabel = [0, 32] + version + kemSuite + Array("shared_secret".utf8)
    private static let secretLabel = version + hpkeSuite + Array("secret".utf8)
    private static let keyLabel = [0, 32] + version + hpkeSuite + Array("key".utf8)
    private static let baseNonceLabel = [0, 12] + version + hpkeSuite + Array("base_nonce".utf8)
    /// HKDF-Extract with no salt is HMAC keyed with zeros, the same key for every message.
    private static let noSalt = HMACSHA256(key: [])

    private let privateKey: Curve25519.KeyAgreement.PrivateKey
    private let publicKey: [UInt8]
    /// Per sender: its public key's bytes and DH(skR, pkS).
    private let senders: [String: (key: [UInt8], dh: [UInt8])]
    /// mode || psk_id_hash || info_hash: the same for every message (no PSK, one `info`).
    private let keyScheduleContext: [UInt8]

    init(privateKey: Curve25519.KeyAgreement.PrivateKey, senders: [String: Curve25519.KeyAgreement.PublicKey], info: Data) throws {
        self.privateKey = privateKey
        publicKey = Array(privateKey.publicKey.rawRepresentation)
        var table: [String: (key: [UInt8], dh: [UInt8])] = [:]
        for (id, key) in senders {
            guard let dh = try? privateKey.sharedSecretFromKeyAgreement(with: key) else { continue }
            table[id] = (Array(key.rawRepresentation), dh.withUnsafeBytes { Array($0) })
        }
        self.senders = table
        // LabeledExtract("", label, ikm) = HKDF-Extract("", "HPKE-v1" || suite_id || label || ikm).
        keyScheduleContext = [Self.modeAuth]
            + Self.noSalt.code(Self.version, Self.hpkeSuite, Array("psk_id_hash".utf8))
            + Self.noSalt.code(Self.version, Self.hpkeSuite, Array("info_hash".utf8), Array(info))
    }

    /// Opens a message from `sender`, one of the agencies this opener was made with.
    ///
    /// HKDF here is HMAC-SHA256 on swift-crypto's `SHA256` (`HMACSHA256`): each step of the
    /// key schedule is one HMAC (an expand to at most 32 bytes is its first block), and
    /// swift-crypto's generic `HKDF` cost as much as the X25519 itself.
    func open(_ ciphertext: Data, encapsulatedKey enc: Data, sender: String, authenticating aad: [UInt8]) throws -> [UInt8] {
        guard let (senderBytes, dhS) = senders[sender] else { throw CryptoKitError.incorrectKeySize }
        let pkE = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: enc)
        let dhE = try privateKey.sharedSecretFromKeyAgreement(with: pkE).withUnsafeBytes { Array($0) }
        // AuthDecap: dh = DH(skR, pkE) || DH(skR, pkS); kem_context = enc || pkR || pkS.
        // eae_prk = LabeledExtract("", "eae_prk", dh)
        let eaePRK = Self.noSalt.code(Self.eaePRKLabel, dhE, dhS)
        // shared_secret = LabeledExpand(eae_prk, "shared_secret", kem_context, 32)
        let sharedSecret = HMACSHA256(key: eaePRK).code(Self.sharedSecretLabel, Array(enc), publicKey, senderBytes, [1])
        // KeySchedule, no PSK: secret = LabeledExtract(shared_secret, "secret", "").
        let secret = HMACSHA256(key: HMACSHA256(key: sharedSecret).code(Self.secretLabel))
        let key = secret.code(Self.keyLabel, keyScheduleContext, [1])
        let baseNonce = secret.code(Self.baseNonceLabel, keyScheduleContext, [1]).prefix(12)
        // The first message: nonce = base_nonce XOR 0.
        guard ciphertext.count >= 16 else { throw CryptoKitError.incorrectParameterSize }
        let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: baseNonce), ciphertext: ciphertext.dropLast(16), tag: ciphertext.suffix(16))
        return Array(try ChaChaPoly.open(box, using: SymmetricKey(data: key), authenticating: aad))
    }
}

/// HMAC-SHA256 (RFC 2104) for keys of at most one block, with both padded keys hashed once:
/// each code is then two SHA-256 finalizations over the message and the inner digest.
struct HMACSHA256 {
    private var inner = SHA256()
    private var outer = SHA256()

    init(key: [UInt8]) {
        precondition(key.count <= 64, "HMACSHA256 takes keys of at most one block")
        var pad = [UInt8](repeating: 0x36, count: 64)
        for (index, byte) in key.enumerated() { pad[index] ^= byte }
        pad.withUnsafeBytes { inner.update(bufferPointer: $0) }
        for index in pad.indices { pad[index] ^= 0x36 ^ 0x5C }
        pad.withUnsafeBytes { outer.update(bufferPointer: $0) }
    }

    /// HMAC(key, parts joined).
    func code(_ parts: [UInt8]...) -> [UInt8] {
        var inner = self.inner, outer = self.outer
        for part in parts { part.withUnsafeBytes { inner.update(bufferPointer: $0) } }
        inner.finalize().withUnsafeBytes { outer.update(bufferPointer: $0) }
        return outer.finalize().withUnsafeBytes { Array($0) }
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

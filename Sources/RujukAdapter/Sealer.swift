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
///
/// Seals go out in **sessions** (RRP.md section 9.2): one HPKE context per recipient, with a
/// fresh ephemeral key, seals up to `sessionLimit` referrals or for `sessionSeconds`, each with
/// the next sequence number, carried as `sealed.seq`. A recipient derives a session's context
/// once and opens every later referral of it with the AEAD alone, in any order. The contexts
/// live in memory only: a restarted adapter starts new sessions, so no (key, nonce) is reused.
public struct Sealer: @unchecked Sendable {
    static let info = Data("rujuk referral body v1".utf8)
    static var suite: HPKE.Ciphersuite { .Curve25519_SHA256_ChachaPoly }

    let agency: String
    /// Every agency's seal_key, parsed once.
    private let publicKeys: [String: Curve25519.KeyAgreement.PublicKey]
    private let hpke: RFC9180AuthMode
    /// This agency's open sessions, one per recipient.
    private let sessions: Locked<[String: SealingSession]>
    private let sessionLimit: UInt32
    private let sessionNanoseconds: UInt64
    /// The contexts of sessions sealed for us, by sender and encapsulated key.
    private let opened: Locked<ContextCache>
    /// What this agency's ledger keeps personal data under, from the same secret.
    let atRest: AtRestKey

    /// - Parameters:
    ///   - sessionLimit: referrals sealed in one session, at most `SealedBody.maxSeq` + 1.
    ///   - sessionSeconds: how long a session seals before the next one starts.
    public init(agency: String, keys: KeyFile, registry: AgencyRegistry, sessionLimit: UInt32 = 100_000, sessionSeconds: Double = 600) throws {
        guard let secret = keys.sealSecret, let raw = Data(base64Encoded: secret) else {
            throw RujukError(.config, "the key file of '\(agency)' has no seal_secret; make one with `rujuk keygen --agency \(agency)`")
        }
        let privateKey: Curve25519.KeyAgreement.PrivateKey
        do {
            privateKey = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw)
        } catch {
            throw RujukError(.config, "the seal_secret of '\(agency)' is not an X25519 key")
        }
        if let listed = registry[agency]?.sealKey, listed != privateKey.publicKey.rawRepresentation.base64EncodedString() {
            throw RujukError(.config, "the key file of '\(agency)' does not match its seal_key in agencies.toml")
        }
        precondition(sessionLimit >= 1 && sessionSeconds > 0, "a sealing session seals at least once")
        self.agency = agency
        var publicKeys: [String: Curve25519.KeyAgreement.PublicKey] = [:]
        for other in registry.agencies {
            if let text = other.sealKey, let raw = Data(base64Encoded: text), let key = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: raw) {
                publicKeys[other.id] = key
            }
        }
        self.publicKeys = publicKeys
        hpke = try RFC9180AuthMode(privateKey: privateKey, peers: publicKeys, info: Self.info)
        sessions = Locked([:])
        self.sessionLimit = sessionLimit
        sessionNanoseconds = UInt64(sessionSeconds * 1e9)
        opened = Locked(ContextCache(capacity: 1024))
        atRest = AtRestKey(sealSecret: privateKey)
    }

    private func publicKey(of agency: String) throws -> Curve25519.KeyAgreement.PublicKey {
        guard let key = publicKeys[agency] else {
            throw RujukError(.keyUnknown, "'\(agency)' has no seal_key in agencies.toml, so nothing can be sealed for it")
        }
        return key
    }

    /// Seals `body` for the referral's recipient; `referral.sealed` is ignored.
    public func seal(_ body: ReferralBody, for referral: Referral) throws -> SealedBody {
        try seal(JSONCoding.encode(body), for: referral.to, associatedData: referral.sealedAssociatedData)
    }

    /// Opens a referral sealed for this agency, checking it was sealed by `referral.from` for
    /// this very envelope; throws `seal_invalid` otherwise.
    public func open(_ referral: Referral) throws -> ReferralBody {
        let plaintext = try open(referral.sealed, from: referral.from, associatedData: referral.sealedAssociatedData, what: "the sealed part of \(referral.id)")
        return try JSONCoding.decode(ReferralBody.self, from: plaintext, what: "the sealed part")
    }

    /// Seals the words of a status change for the other agency of the handoff, bound to the
    /// change itself; `event.sealed` is ignored.
    public func seal(_ note: UpdateNote, for event: HandoffEvent, to recipient: String) throws -> SealedBody {
        try seal(JSONCoding.encode(note), for: recipient, associatedData: event.sealedAssociatedData)
    }

    /// Opens the words of a status change made by `event.by` for this agency; nil when it has
    /// none, `seal_invalid` when they do not open.
    public func open(_ event: HandoffEvent) throws -> UpdateNote? {
        guard let sealed = event.sealed else { return nil }
        let plaintext = try open(sealed, from: event.by, associatedData: event.sealedAssociatedData, what: "the sealed note of \(event.id)")
        let note = try JSONCoding.decode(UpdateNote.self, from: plaintext, what: "the sealed note")
        try ReferralValidation.validate(note)
        return note
    }

    /// Seals `plaintext` for `recipient` in its current session.
    private func seal(_ plaintext: [UInt8], for recipient: String, associatedData: [UInt8]) throws -> SealedBody {
        _ = try publicKey(of: recipient)
        let now = DispatchTime.now().uptimeNanoseconds
        // The sequence number is taken under the lock, the sealing itself done outside it.
        let (session, seq) = try sessions.withLock { sessions throws -> (SealingSession, UInt32) in
            if let session = sessions[recipient], session.next < sessionLimit, now &- session.started < sessionNanoseconds {
                sessions[recipient]!.next += 1
                return (session, session.next)
            }
            let fresh = try SealingSession(context: hpke.encapsulate(to: recipient), started: now)
            sessions[recipient] = fresh
            sessions[recipient]!.next = 1
            return (fresh, 0)
        }
        let sealed = try ChaChaPoly.seal(plaintext, using: session.context.key, nonce: session.context.nonce(seq), authenticating: associatedData)
        return SealedBody(enc: session.encBase64, ct: (sealed.ciphertext + sealed.tag).base64EncodedString(), seq: seq == 0 ? nil : Int(seq))
    }

    /// Opens what `sender` sealed for this agency with `associatedData`; `seal_invalid`, naming
    /// `what`, when it does not open.
    private func open(_ sealed: SealedBody, from sender: String, associatedData: [UInt8], what: String) throws -> [UInt8] {
        _ = try publicKey(of: sender)
        guard let enc = Data(base64Encoded: sealed.enc), let ciphertext = Data(base64Encoded: sealed.ct) else {
            throw RujukError(.sealInvalid, "\(what) is not base64")
        }
        let seq = sealed.seq ?? 0
        guard seq >= 0, seq <= SealedBody.maxSeq, ciphertext.count >= 16 else {
            throw RujukError(.sealInvalid, "\(what) has no valid sequence number or is too short")
        }
        do {
            let known = ContextCache.Key(sender: sender, enc: sealed.enc)
            let cached = opened.withLock { $0[known] }
            let context = try cached ?? hpke.decapsulate(enc, from: sender)
            let box = try ChaChaPoly.SealedBox(nonce: context.nonce(UInt32(seq)), ciphertext: ciphertext.dropLast(16), tag: ciphertext.suffix(16))
            let plaintext = try ChaChaPoly.open(box, using: context.key, authenticating: associatedData)
            // Kept only once it opened something: what does not open never takes a place.
            if cached == nil { opened.withLock { $0.insert(context, for: known) } }
            return Array(plaintext)
        } catch {
            throw RujukError(.sealInvalid, "\(what) does not open: altered, sealed for another key, or not by '\(sender)'")
        }
    }
}

/// One recipient's sealing session: its context and the next sequence number to seal with.
private struct SealingSession {
    let context: HPKEContext
    let encBase64: String
    let started: UInt64
    var next: UInt32 = 0

    init(context: (enc: [UInt8], context: HPKEContext), started: UInt64) {
        self.context = context.context
        encBase64 = Data(context.enc).base64EncodedString()
        self.started = started
    }
}

/// The contexts of sessions already opened, at most `capacity`, the oldest forgotten first.
struct ContextCache {
    struct Key: Hashable {
        let sender: String
        let enc: String
    }

    private var contexts: [Key: HPKEContext] = [:]
    private var order: [Key] = []
    private var oldest = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    subscript(key: Key) -> HPKEContext? { contexts[key] }

    mutating func insert(_ context: HPKEContext, for key: Key) {
        guard contexts.updateValue(context, forKey: key) == nil else { return }
        if order.count < capacity {
            order.append(key)
        } else {
            contexts[order[oldest]] = nil
            order[oldest] = key
            oldest = (oldest + 1) % capacity
        }
    }
}

/// An HPKE context's AEAD key and base nonce (RFC 9180 section 5.2).
struct HPKEContext: @unchecked Sendable {
    let key: SymmetricKey
    let baseNonce: [UInt8]

    /// The nonce of message `seq`: base_nonce XOR I2OSP(seq, 12).
    func nonce(_ seq: UInt32) -> ChaChaPoly.Nonce {
        var bytes = baseNonce
        bytes[8] ^= UInt8(truncatingIfNeeded: seq >> 24)
        bytes[9] ^= UInt8(truncatingIfNeeded: seq >> 16)
        bytes[10] ^= UInt8(truncatingIfNeeded: seq >> 8)
        bytes[11] ^= UInt8(truncatingIfNeeded: seq)
        // 12 bytes: always a valid ChaCha20-Poly1305 nonce.
        return try! ChaChaPoly.Nonce(data: bytes)
    }
}

/// HPKE (RFC 9180) in auth mode for DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
/// ChaCha20-Poly1305: the context of a sender and of a recipient, written out on swift-crypto's
/// X25519, SHA256 and ChaChaPoly.
///
/// Written out for two reasons: auth mode's static Diffie-Hellman, DH(skS, pkR) = DH(skR, pkS),
/// is the same for every session between two agencies and is computed once per peer here; and
/// swift-crypto's `HPKE.Recipient` opens only in order, where referrals of one session may come
/// in any order (a redelivery, a restart) and must be opened by their sequence number. The steps
/// are RFC 9180's (§4.1 DHKEM AuthEncap/AuthDecap, §5.1 KeySchedule, §5.2 nonces); SealerTests
/// hold both sides to swift-crypto's `HPKE.Sender` and `HPKE.Recipient`, accepted and refused alike.
struct RFC9180AuthMode: @unchecked Sendable {
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
    /// Per peer agency: its public key, its bytes and the static DH(sk, pk_peer).
    private let peers: [String: (key: Curve25519.KeyAgreement.PublicKey, bytes: [UInt8], dh: [UInt8])]
    /// mode || psk_id_hash || info_hash: the same for every context (no PSK, one `info`).
    private let keyScheduleContext: [UInt8]

    init(privateKey: Curve25519.KeyAgreement.PrivateKey, peers: [String: Curve25519.KeyAgreement.PublicKey], info: Data) throws {
        self.privateKey = privateKey
        publicKey = Array(privateKey.publicKey.rawRepresentation)
        var table: [String: (key: Curve25519.KeyAgreement.PublicKey, bytes: [UInt8], dh: [UInt8])] = [:]
        for (id, key) in peers {
            guard let dh = try? privateKey.sharedSecretFromKeyAgreement(with: key) else { continue }
            table[id] = (key, Array(key.rawRepresentation), dh.withUnsafeBytes { Array($0) })
        }
        self.peers = table
        // LabeledExtract("", label, ikm) = HKDF-Extract("", "HPKE-v1" || suite_id || label || ikm).
        keyScheduleContext = [Self.modeAuth]
            + Self.noSalt.code(Self.version, Self.hpkeSuite, Array("psk_id_hash".utf8))
            + Self.noSalt.code(Self.version, Self.hpkeSuite, Array("info_hash".utf8), Array(info))
    }

    private func peer(_ agency: String) throws -> (key: Curve25519.KeyAgreement.PublicKey, bytes: [UInt8], dh: [UInt8]) {
        guard let peer = peers[agency] else { throw CryptoKitError.incorrectKeySize }
        return peer
    }

    /// SetupAuthS: a fresh ephemeral key, its encapsulation, and the sender's context.
    func encapsulate(to recipient: String) throws -> (enc: [UInt8], context: HPKEContext) {
        let (recipientKey, recipientBytes, dhS) = try peer(recipient)
        let ephemeral = Curve25519.KeyAgreement.PrivateKey()
        let enc = Array(ephemeral.publicKey.rawRepresentation)
        let dhE = try ephemeral.sharedSecretFromKeyAgreement(with: recipientKey).withUnsafeBytes { Array($0) }
        // AuthEncap: dh = DH(skE, pkR) || DH(skS, pkR); kem_context = enc || pkR || pkS.
        return (enc, schedule(dhE: dhE, dhS: dhS, kemContext: enc, recipientBytes, publicKey))
    }

    /// SetupAuthR: the recipient's context of a session from `sender`.
    func decapsulate(_ enc: Data, from sender: String) throws -> HPKEContext {
        let (_, senderBytes, dhS) = try peer(sender)
        let pkE = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: enc)
        let dhE = try privateKey.sharedSecretFromKeyAgreement(with: pkE).withUnsafeBytes { Array($0) }
        // AuthDecap: dh = DH(skR, pkE) || DH(skR, pkS); kem_context = enc || pkR || pkS.
        return schedule(dhE: dhE, dhS: dhS, kemContext: Array(enc), publicKey, senderBytes)
    }

    /// HKDF here is HMAC-SHA256 on swift-crypto's `SHA256` (`HMACSHA256`): each step of the
    /// key schedule is one HMAC (an expand to at most 32 bytes is its first block), and
    /// swift-crypto's generic `HKDF` cost as much as the X25519 itself.
    private func schedule(dhE: [UInt8], dhS: [UInt8], kemContext: [UInt8]...) -> HPKEContext {
        // eae_prk = LabeledExtract("", "eae_prk", dh)
        let eaePRK = Self.noSalt.code(Self.eaePRKLabel, dhE, dhS)
        // shared_secret = LabeledExpand(eae_prk, "shared_secret", kem_context, 32)
        let sharedSecret = HMACSHA256(key: eaePRK).code(Self.sharedSecretLabel, kemContext[0], kemContext[1], kemContext[2], [1])
        // KeySchedule, no PSK: secret = LabeledExtract(shared_secret, "secret", "").
        let secret = HMACSHA256(key: HMACSHA256(key: sharedSecret).code(Self.secretLabel))
        let key = secret.code(Self.keyLabel, keyScheduleContext, [1])
        let baseNonce = Array(secret.code(Self.baseNonceLabel, keyScheduleContext, [1]).prefix(12))
        return HPKEContext(key: SymmetricKey(data: key), baseNonce: baseNonce)
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
    /// A new key pair for `owner`: CurveZMQ always, the sealing pair for an agency, the
    /// checkpoint signing pair for the broker.
    public static func generate(owner: String, sealing: Bool, signing: Bool = false) throws -> KeyFile {
        let curve = try CurveKeyPair.generate()
        var file = KeyFile(owner: owner, curvePublic: curve.publicKey, curveSecret: curve.secretKey)
        if sealing {
            let seal = Curve25519.KeyAgreement.PrivateKey()
            file.sealPublic = seal.publicKey.rawRepresentation.base64EncodedString()
            file.sealSecret = seal.rawRepresentation.base64EncodedString()
        }
        if signing { file.addSigningKey() }
        return file
    }

    /// Gives the file a new checkpoint signing pair (Ed25519).
    public mutating func addSigningKey() {
        let sign = Curve25519.Signing.PrivateKey()
        signPublic = sign.publicKey.rawRepresentation.base64EncodedString()
        signSecret = sign.rawRepresentation.base64EncodedString()
    }
}

/// Keys made at start for a whole network, held in memory only: for `rujuk demo`, the
/// benchmark and the tests. A deployment makes its keys with `rujuk keygen` instead.
public struct EphemeralKeys: Sendable {
    public let broker: KeyFile
    public let agencies: [String: KeyFile]

    public init(for registry: AgencyRegistry) throws {
        broker = try KeyFile.generate(owner: "broker", sealing: false, signing: true)
        var agencies: [String: KeyFile] = [:]
        for agency in registry.agencies { agencies[agency.id] = try KeyFile.generate(owner: agency.id, sealing: true) }
        self.agencies = agencies
    }

    /// The registry with these public keys in it, as agencies.toml would list them.
    public func apply(to registry: AgencyRegistry) -> AgencyRegistry {
        registry.withKeys(agencies.mapValues { (curve: $0.curvePublic, seal: $0.sealPublic) })
    }
}

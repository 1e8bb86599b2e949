@preconcurrency import Crypto
import Foundation
import RujukAdapter
import RujukCore
import Testing

/// The seal, held to swift-crypto's own HPKE: what `Sealer` seals, `HPKE.Recipient` opens; what
/// `HPKE.Sender` seals, `Sealer` opens (both sides are RFC 9180 written out, with the static
/// Diffie-Hellman per peer and each session's context cached); and both refuse the same
/// alterations. A session's referrals open in any order, and sessions end when they should.
@Suite(.timeLimit(.minutes(5))) struct SealerTests {
    static let info = Data("rujuk referral body v1".utf8)
    static let suite = HPKE.Ciphersuite.Curve25519_SHA256_ChachaPoly

    func privateKey(_ agency: String) throws -> Curve25519.KeyAgreement.PrivateKey {
        try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Data(base64Encoded: Network.keys.agencies[agency]!.sealSecret!)!)
    }

    /// swift-crypto's reference open of a referral sealed for `recipient`.
    func referenceOpen(_ referral: Referral, recipient: String) throws -> Data {
        let sender = try privateKey(referral.from).publicKey
        var context = try HPKE.Recipient(privateKey: privateKey(recipient), ciphersuite: Self.suite, info: Self.info,
                                         encapsulatedKey: Data(base64Encoded: referral.sealed.enc)!, authenticatedBy: sender)
        return try context.open(Data(base64Encoded: referral.sealed.ct)!, authenticating: referral.sealedAssociatedData)
    }

    @Test func sealAndOpenAgreeWithSwiftCryptosHPKE() throws {
        let police = try Network.sealer("polda-kepri"), hospital = try Network.sealer("rsud-embung-fatimah")
        for index in 0..<50 {
            var referral = Fixtures.referral(name: "Nama \(index) " + String(repeating: "é", count: index))
            // Ours sealed: swift-crypto opens it, and so do we, to the same bytes.
            let reference = try referenceOpen(referral, recipient: "rsud-embung-fatimah")
            let body = try hospital.open(referral)
            #expect(JSONCoding.encode(body) == Array(reference))

            // swift-crypto sealed: we open it.
            var sender = try HPKE.Sender(recipientKey: privateKey("rsud-embung-fatimah").publicKey, ciphersuite: Self.suite, info: Self.info,
                                         authenticatedBy: privateKey("polda-kepri"))
            let plaintext = JSONCoding.encode(body)
            referral.sealed = SealedBody(enc: sender.encapsulatedKey.base64EncodedString(),
                                         ct: try sender.seal(plaintext, authenticating: referral.sealedAssociatedData).base64EncodedString())
            #expect(try hospital.open(referral) == body)
            #expect(throws: RujukError.self) { try police.open(referral) }  // not sealed for the police
        }
    }

    /// A referral of the police's network fixture with the given name, sealed by `sealer`.
    func sealed(by sealer: Sealer, name: String) throws -> (Referral, ReferralBody) {
        var referral = Fixtures.referral(name: name)
        let body = try Network.sealer("rsud-embung-fatimah").open(referral)
        referral.sealed = try sealer.seal(body, for: referral)
        return (referral, body)
    }

    @Test func aSessionSealsInSequenceAndOpensInAnyOrder() throws {
        let police = try Network.sealer("polda-kepri")
        var session: [(Referral, ReferralBody)] = []
        for index in 0..<20 { session.append(try sealed(by: police, name: "Nama \(index)")) }
        // One encapsulated key; sequence numbers 0 (absent), 1, 2, ...
        #expect(Set(session.map(\.0.sealed.enc)).count == 1)
        #expect(session.map(\.0.sealed.seq) == [nil] + (1..<20).map { Optional($0) })
        // swift-crypto's multi-shot recipient, which opens only in order, agrees.
        var reference = try HPKE.Recipient(privateKey: privateKey("rsud-embung-fatimah"), ciphersuite: Self.suite, info: Self.info,
                                           encapsulatedKey: Data(base64Encoded: session[0].0.sealed.enc)!,
                                           authenticatedBy: privateKey("polda-kepri").publicKey)
        for (referral, body) in session {
            let plaintext = try reference.open(Data(base64Encoded: referral.sealed.ct)!, authenticating: referral.sealedAssociatedData)
            #expect(Array(plaintext) == JSONCoding.encode(body))
        }
        // Ours opens them backwards (a redelivery after a restart comes in any order), on a
        // fresh recipient and on one that already holds the context.
        let hospital = try Network.sealer("rsud-embung-fatimah")
        for (referral, body) in session.reversed() { #expect(try hospital.open(referral) == body) }
        for (referral, body) in session.shuffled() { #expect(try hospital.open(referral) == body) }

        // swift-crypto's multi-shot sender: ours opens its tenth seal first.
        var sender = try HPKE.Sender(recipientKey: privateKey("rsud-embung-fatimah").publicKey, ciphersuite: Self.suite, info: Self.info,
                                     authenticatedBy: privateKey("polda-kepri"))
        var theirs: [(Referral, ReferralBody)] = []
        for (index, (original, body)) in session.prefix(10).enumerated() {
            var referral = original
            referral.sealed = SealedBody(enc: sender.encapsulatedKey.base64EncodedString(),
                                         ct: try sender.seal(JSONCoding.encode(body), authenticating: referral.sealedAssociatedData).base64EncodedString(),
                                         seq: index == 0 ? nil : index)
            theirs.append((referral, body))
        }
        for (referral, body) in theirs.reversed() { #expect(try hospital.open(referral) == body) }
    }

    @Test func aSessionEndsAfterItsLimitOrItsTime() throws {
        let keys = Network.keys.agencies["polda-kepri"]!
        let byCount = try Sealer(agency: "polda-kepri", keys: keys, registry: Network.registry, sessionLimit: 3)
        var encs: [String] = [], seqs: [Int?] = []
        for index in 0..<7 {
            let (referral, _) = try sealed(by: byCount, name: "Nama \(index)")
            encs.append(referral.sealed.enc)
            seqs.append(referral.sealed.seq)
        }
        #expect(seqs == [nil, 1, 2, nil, 1, 2, nil])
        #expect(Set(encs).count == 3 && encs[0] == encs[2] && encs[2] != encs[3] && encs[3] == encs[5] && encs[5] != encs[6])
        // A session shorter than any two seals: each one has its own.
        let byTime = try Sealer(agency: "polda-kepri", keys: keys, registry: Network.registry, sessionSeconds: 1e-9)
        let first = try sealed(by: byTime, name: "A").0.sealed, second = try sealed(by: byTime, name: "B").0.sealed
        #expect(first.enc != second.enc && first.seq == nil && second.seq == nil)
        // Sessions are per recipient: another agency's referral starts its own.
        let police = try Network.sealer("polda-kepri")
        let toHospital = try sealed(by: police, name: "C").0
        var toShelter = Fixtures.referral(to: "uptd-ppa-batam", name: "D")
        toShelter.sealed = try police.seal(try Network.sealer("uptd-ppa-batam").open(toShelter), for: toShelter)
        #expect(toHospital.sealed.enc != toShelter.sealed.enc && toShelter.sealed.seq == nil)
        #expect(try police.seal(try Network.sealer("rsud-embung-fatimah").open(toHospital), for: toHospital).seq == 1)
    }

    @Test func everyAlterationIsRefusedByBothAlike() throws {
        let hospital = try Network.sealer("rsud-embung-fatimah")
        let original = Fixtures.referral()
        // The hospital holds the session's context already: the alterations below meet it.
        _ = try hospital.open(original)
        var alterations: [(String, Referral)] = []
        let ct = [UInt8](Data(base64Encoded: original.sealed.ct)!), enc = [UInt8](Data(base64Encoded: original.sealed.enc)!)
        for index in stride(from: 0, to: ct.count, by: max(1, ct.count / 24)) {
            var bytes = ct
            bytes[index] ^= 0x80
            var altered = original
            altered.sealed.ct = Data(bytes).base64EncodedString()
            alterations.append(("ciphertext byte \(index)", altered))
        }
        var flippedEnc = enc
        flippedEnc[3] ^= 0x01
        var altered = original
        altered.sealed.enc = Data(flippedEnc).base64EncodedString()
        alterations.append(("encapsulated key", altered))
        altered = original
        altered.sealed.ct = Data(ct.dropLast()).base64EncodedString()
        alterations.append(("truncated", altered))
        altered = original
        altered.reason = .other
        alterations.append(("envelope", altered))
        altered = original
        altered.from = "uptd-ppa-batam"  // claims another sender, which has a key of its own
        alterations.append(("sender", altered))
        for (what, referral) in alterations {
            #expect(throws: (any Error).self, "swift-crypto refuses: \(what)") { try referenceOpen(referral, recipient: "rsud-embung-fatimah") }
            #expect { try hospital.open(referral) } throws: { ($0 as? RujukError)?.code == .sealInvalid }
            #expect { try Network.sealer("rsud-embung-fatimah").open(referral) } throws: { ($0 as? RujukError)?.code == .sealInvalid }
        }
        // Moved to another place in its session (the nonce differs), or to none: refused, with
        // the context held and without.
        for seq in [1, 2, 4096, SealedBody.maxSeq, -1, SealedBody.maxSeq + 1] {
            altered = original
            altered.sealed.seq = seq
            #expect { try hospital.open(altered) } throws: { ($0 as? RujukError)?.code == .sealInvalid }
            #expect { try Network.sealer("rsud-embung-fatimah").open(altered) } throws: { ($0 as? RujukError)?.code == .sealInvalid }
        }
        // None of them displaced the genuine one.
        #expect(try hospital.open(original) == Network.sealer("rsud-embung-fatimah").open(original))
    }
}

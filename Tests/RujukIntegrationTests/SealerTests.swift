@preconcurrency import Crypto
import Foundation
import RujukAdapter
import RujukCore
import Testing

/// The seal, held to swift-crypto's own HPKE: what `Sealer` seals, `HPKE.Recipient` opens; what
/// `HPKE.Sender` seals, `Sealer` opens (its open is RFC 9180 written out, with the per-sender
/// Diffie-Hellman cached); and both refuse the same alterations.
@Suite struct SealerTests {
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
        let police = try Fixtures.sealer("polda-kepri"), hospital = try Fixtures.sealer("rsud-embung-fatimah")
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

    @Test func everyAlterationIsRefusedByBothAlike() throws {
        let hospital = try Fixtures.sealer("rsud-embung-fatimah")
        let original = Fixtures.referral()
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
        altered.reason = "changed"
        alterations.append(("envelope", altered))
        altered = original
        altered.from = "uptd-ppa-batam"  // claims another sender, which has a key of its own
        alterations.append(("sender", altered))
        for (what, referral) in alterations {
            #expect(throws: (any Error).self, "swift-crypto refuses: \(what)") { try referenceOpen(referral, recipient: "rsud-embung-fatimah") }
            #expect { try hospital.open(referral) } throws: { ($0 as? RujukError)?.code == .sealInvalid }
        }
    }
}

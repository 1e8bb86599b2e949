import Foundation
import RujukAdapter
import RujukCore

enum Fixtures {
    /// A referral as `from`'s adapter would send it: its personal part sealed for `to` with
    /// the test network's keys.
    static func referral(from: String = "polda-kepri", to: String = "rsud-embung-fatimah", name: String = "Siti Contoh",
                         service: Service = .medicalCare, consent: Consent? = nil, priority: Priority = .urgent) -> Referral {
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        let consent = consent ?? Consent(status: .given, scope: [.health], date: now, recordedBy: "bripka-0412")
        let body = ReferralBody(
            subject: Subject(ageBand: "18-24", gender: "female", nationality: "ID", languages: ["id"], child: false, needs: [], name: name),
            consent: consent)
        var referral = Referral(
            caseRef: "KR-BTM-2026-0041", from: from, to: to, service: service, priority: priority,
            location: Location(province: "ID-KR", regency: "21.71"), reason: .medicalExamination,
            createdAt: now, dueReceive: now + 3600, dueRespond: now + 4 * 3600, dueComplete: now + 7 * 86400,
            consent: ConsentClaim(consent), sealed: SealedBody(enc: "", ct: ""))
        // To or from an agency with no keys (the tests of unknown agencies): a stand-in seal.
        referral.sealed = (try? Network.sealer(from).seal(body, for: referral))
            ?? SealedBody(enc: Data(repeating: 7, count: 32).base64EncodedString(), ct: Data(repeating: 9, count: 80).base64EncodedString())
        return referral
    }
}

extension Adapter {
    /// The notifications of one type this adapter's ledger holds for its agency system, oldest first.
    func notices(_ type: String) throws -> [RujukAdapter.Notification] {
        try ledger.notifications(after: 0).map { try JSONCoding.decode(RujukAdapter.Notification.self, from: $0.1, what: "n") }.filter { $0.type == type }
    }
}

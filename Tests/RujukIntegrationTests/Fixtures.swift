import Foundation
import RujukCore

enum Fixtures {
    static func referral(from: String = "polda-kepri", to: String = "rsud-embung-fatimah", name: String = "Siti Contoh") -> Referral {
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        return Referral(
            caseRef: "KR-BTM-2026-0041", from: from, to: to, service: .medicalCare, priority: .urgent,
            location: Location(province: "ID-KR", regency: "Batam"), reason: "post-rescue medical examination",
            createdAt: now, dueReceive: now + 3600, dueRespond: now + 4 * 3600, dueComplete: now + 7 * 86400,
            body: ReferralBody(
                subject: Subject(ageBand: "18-24", gender: "female", nationality: "ID", languages: ["id"], child: false, needs: [], name: name),
                consent: Consent(status: .given, scope: [.health], date: now, recordedBy: "bripka-0412")))
    }
}

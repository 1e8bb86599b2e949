import Foundation
import Testing
@testable import RujukCore

@Suite(.timeLimit(.minutes(5))) struct SLAClockTests {
    let start = Date(timeIntervalSince1970: 1_795_000_000)
    var deadlines: Deadlines { Deadlines(receive: start + 900, respond: start + 86400, complete: start + 7 * 86400) }
    let level2After: TimeInterval = 4 * 3600

    func step(_ offset: TimeInterval, _ status: HandoffStatus, _ state: EscalationState = .none) -> SLAClock.SenderStep {
        SLAClock.senderStep(now: start + offset, status: status, deadlines: deadlines, state: state, level2After: level2After)
    }

    @Test func eachClockRunsOutOnlyWhileItIsNotMet() {
        #expect(step(899, .requested) == .none, "before the receive deadline")
        #expect(step(900, .requested) == .none, "at the deadline it has not run out yet")
        #expect(step(901, .requested) == .escalate(level: 1, clock: .receive))
        #expect(step(901, .received) == .none, "received in time: the receive clock is met")
        #expect(step(86401, .received) == .escalate(level: 1, clock: .respond))
        #expect(step(86401, .requested) == .escalate(level: 1, clock: .respond), "the latest clock that ran out is escalated")
        #expect(step(86401, .accepted) == .none)
        #expect(step(7 * 86400 + 1, .inProgress) == .escalate(level: 1, clock: .complete))
        for status in [HandoffStatus.completed, .declined, .cancelled] {
            #expect(step(30 * 86400, status) == .none, "\(status) never escalates")
        }
    }

    @Test func levelTwoFollowsAfterTheIntervalAndAResolutionEndsIt() {
        let atLevel1 = EscalationState(level: 1, clock: .receive, since: start + 901)
        #expect(step(901 + level2After - 1, .requested, atLevel1) == .none)
        #expect(step(901 + level2After, .requested, atLevel1) == .escalate(level: 2, clock: .receive))
        let atLevel2 = EscalationState(level: 2, clock: .receive, since: start + 901 + level2After)
        #expect(step(901 + 10 * level2After, .requested, atLevel2) == .escalate(level: 2, clock: .respond), "a later clock at the level reached")
        #expect(step(1000, .received, atLevel1) == .resolve, "received: the receive escalation is resolved")
        #expect(step(1000, .cancelled, atLevel2) == .resolve, "cancelled: over, resolved")
        #expect(step(1000, .received, EscalationState(level: 1, clock: .respond, since: start + 1000)) == .none,
                "an escalated clock that has not been met and no interval passed: nothing new")
    }

    @Test func theNextCheckIsTheNextThingThatCanHappen() {
        func next(_ status: HandoffStatus, _ state: EscalationState = .none) -> Date? {
            SLAClock.senderNextCheck(status: status, deadlines: deadlines, state: state, level2After: level2After)
        }
        #expect(next(.requested) == deadlines.receive + 0.001)
        #expect(next(.received) == deadlines.respond + 0.001)
        #expect(next(.inProgress) == deadlines.complete + 0.001)
        #expect(next(.completed) == nil, "over: never again")
        let atLevel1 = EscalationState(level: 1, clock: .receive, since: start + 901)
        #expect(next(.requested, atLevel1) == start + 901 + level2After, "level 2 comes before the respond deadline here")
        #expect(next(.received, atLevel1) == .distantPast, "resolved: at once")
        #expect(next(.requested, EscalationState(level: 2, clock: .complete, since: start)) == nil, "nothing left to escalate")
    }

    @Test func theRecipientIsWarnedBeforeAndAtEachOfItsDeadlines() {
        let lead: TimeInterval = 600
        func step(_ offset: TimeInterval, _ status: HandoffStatus, _ told: Set<String> = []) -> SLAClock.RecipientStep {
            SLAClock.recipientStep(now: start + offset, status: status, deadlines: deadlines, told: told, lead: lead)
        }
        #expect(step(85799, .received) == .none)
        #expect(step(85800, .received) == .dueSoon(.respond))
        #expect(step(85800, .received, ["respond.soon"]) == .none, "once")
        #expect(step(86401, .received, ["respond.soon"]) == .overdue(.respond))
        #expect(step(86401, .received, ["respond.soon", "respond.over"]) == .none)
        #expect(step(86401, .accepted) == .none, "answered: the respond clock is met")
        #expect(step(7 * 86400 - 600, .inProgress) == .dueSoon(.complete))
        #expect(step(7 * 86400 + 1, .inProgress) == .overdue(.complete), "late with no warning: the overdue notice")
        #expect(SLAClock.told(after: .overdue(.complete)) == ["complete.soon", "complete.over"])
        #expect(SLAClock.recipientNextCheck(status: .received, deadlines: deadlines, told: [], lead: lead) == deadlines.respond - lead)
        #expect(SLAClock.recipientNextCheck(status: .received, deadlines: deadlines, told: ["respond.soon"], lead: lead) == deadlines.respond + 0.001)
        #expect(SLAClock.recipientNextCheck(status: .completed, deadlines: deadlines, told: [], lead: lead) == nil)
    }

    @Test func theLadderComesFromSlaTomlAndNamesOnlyRegisteredAgencies() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let registry = try AgencyRegistry.load(root.appendingPathComponent("Config/agencies.toml"))
        let policy = try SLAPolicy.load(root.appendingPathComponent("Config/sla.toml")).escalation
        try policy.validate(against: registry)
        let police = try #require(registry["polda-kepri"])
        #expect(policy.targets(level: 1, sender: police, service: .medicalCare) == ["gugus-tugas-batam", "gugus-tugas-kepri"])
        #expect(policy.targets(level: 2, sender: police, service: .medicalCare) == ["gugus-tugas-batam", "gugus-tugas-kepri", "gugus-tugas-nasional"])
        #expect(policy.targets(level: 2, sender: police, service: .witnessProtection).last == "lpsk", "witness cases reach LPSK at level 2")
        let consulate = try #require(registry["kjri-johor-bahru"])
        #expect(policy.targets(level: 1, sender: consulate, service: .shelter) == ["gugus-tugas-kepri"], "by the consulate's province, MY-01")
        let lpsk = try #require(registry["lpsk"])
        #expect(!policy.targets(level: 2, sender: lpsk, service: .witnessProtection).contains("lpsk"), "never the sender itself")
        #expect(policy.dutyOfficer(for: "polda-kepri") == "Piket SPKT Polda Kepri")
        #expect(policy.level2After == 4 * 3600 && policy.warnBefore[.emergency] == 600)

        #expect(registry.alternatives(service: .legalAid, province: "ID-KR", excluding: ["polda-kepri", "lbh-batam"], sender: "polda-kepri") == ["pbh-peradi-batam"])
        #expect(registry.alternatives(service: .legalAid, province: "ID-KR", excluding: ["uptd-ppa-batam", "lbh-batam"], sender: "uptd-ppa-batam").isEmpty,
                "PBH Peradi has no MoU with the shelter")
        #expect(registry.alternatives(service: .psychosocialSupport, province: "ID-KR", excluding: ["polda-kepri", "rsud-embung-fatimah"], sender: "polda-kepri") == ["uptd-ppa-batam"])
    }

    @Test func ladderMistakesNameTheFileAndLine() throws {
        let registry = AgencyRegistry([Agency(id: "a-one", name: "A", kind: .police, province: "ID-KR", regency: "Batam", services: [])])
        func load(_ text: String) throws -> SLAPolicy {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("sla-\(UUID().uuidString).toml")
            try text.write(to: url, atomically: true, encoding: .utf8)
            return try SLAPolicy.load(url)
        }
        #expect(throws: ConfigError.self) { try load("[escalation]\nlevel2_after = \"soon\"\n") }
        #expect(throws: ConfigError.self) { try load("[escalation]\nescalate_to = []\n") }
        #expect(throws: ConfigError.self) { try load("[escalation.province.Riau]\nlevel1 = []\n") }
        #expect(throws: ConfigError.self) { try load("[escalation]\nwitness_services = [\"massage\"]\n") }
        let unknown = try load("[escalation]\nnational = []\n\n[escalation.province.ID-KR]\nlevel1 = [\"nobody-here\"]\n")
        do {
            try unknown.escalation.validate(against: registry)
            Issue.record("an unknown agency in the ladder must be refused")
        } catch let error as ConfigError {
            #expect(error.line == 5 && error.message.contains("nobody-here"), "\(error)")
        }
    }
}

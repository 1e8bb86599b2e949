import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
import RujukAdapter
import RujukCore
import Testing

/// The SLA clocks with an injected clock: breaches happen when the test moves time, never by
/// waiting for them.
@Suite(.timeLimit(.minutes(5))) struct SLATests {
    /// A routine referral for psychosocial support from the police to the hospital: receive in
    /// 1 day, respond in 3, complete in 7 (UU 21/2007 Art. 52); level 2 after 4 hours.
    func routineRequest() -> ReferralRequest {
        var request = Network.request(service: .psychosocialSupport)
        request.priority = .routine
        return request
    }

    func brokerLevel(_ network: Network, _ id: String) throws -> Int? {
        try network.broker.store.pool.read { db in try Int.fetchOne(db, sql: "SELECT escalation_level FROM handoff WHERE id = ?", arguments: [id]) }
    }

    @Test func aReferralNobodyReceivesEscalatesToLevelOneThenTwoAndIsResolvedWhenReceived() async throws {
        let clock = ManualClock()
        let network = try Network(clock: clock)
        let police = try network.adapter("polda-kepri")
        let batam = try network.adapter("gugus-tugas-batam")
        let kepri = try network.adapter("gugus-tugas-kepri")
        let nasional = try network.adapter("gugus-tugas-nasional")
        // The hospital's adapter is offline: the referral waits in its mailbox at the broker.
        let sent = try police.refer(routineRequest())
        try await waitFor("committed at the broker") { try police.ledger.view(sent.id)?.delivery == "sent" }
        #expect(police.sweepNow().escalated == 0, "nothing is late yet")

        clock.advance(by: 86400 + 1)
        #expect(police.sweepNow().escalated == 1, "the receive clock ran out")
        #expect(police.sweepNow().escalated == 0, "and is escalated once")
        try await waitFor("both provincial task forces are told") { try batam.ledger.escalations().escalations.count == 1 && kepri.ledger.escalations().escalations.count == 1 }
        let level1 = try #require(try batam.ledger.escalations().escalations.first)
        #expect(level1.referralId == sent.id && level1.notice == .breach && level1.level == 1 && level1.clock == .receive)
        #expect(level1.targets == ["gugus-tugas-batam", "gugus-tugas-kepri"] && level1.to == "rsud-embung-fatimah")
        #expect(level1.suggestions == ["uptd-ppa-batam"], "who else offers psychosocial support in the Riau Islands")
        #expect(try nasional.ledger.escalations().escalations.isEmpty, "not the national task force at level 1")
        let own = try police.notices("handoff.escalated")
        #expect(own.count == 1 && own[0].dutyOfficer == "Piket SPKT Polda Kepri", "the sender's duty officer is told on its own API")
        #expect(try batam.notices("escalation.received").count == 1)
        let task = Task { try await batam.run() }
        defer { task.cancel() }
        try await waitFor("the task force's API listens") { batam.boundHTTPPort != nil }
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(batam.boundHTTPPort!)/api/escalations?referral=\(sent.id)")!)
        request.setValue("Bearer test-token", forHTTPHeaderField: "Authorization")
        let (data, _) = try await URLSession.shared.data(for: request)
        let listed = try JSONCoding.decode(EscalationList.self, from: Array(data), what: "escalations")
        #expect(listed.escalations == [level1], "the task force's system reads it on the API too")

        clock.advance(by: 4 * 3600)
        #expect(police.sweepNow().escalated == 1, "still not received four hours later")
        try await waitFor("the national task force is told") { try nasional.ledger.escalations().escalations.count == 1 }
        let level2 = try #require(try nasional.ledger.escalations().escalations.first)
        #expect(level2.level == 2 && level2.clock == .receive)
        #expect(level2.targets == ["gugus-tugas-batam", "gugus-tugas-kepri", "gugus-tugas-nasional"])
        #expect(try brokerLevel(network, sent.id) == 2)

        // The hospital comes online; its receipt resolves the escalation.
        let hospital = try network.adapter("rsud-embung-fatimah")
        try await waitFor("the police see it received") { try police.ledger.view(sent.id)?.status == .received }
        #expect(try hospital.ledger.view(sent.id) != nil)
        #expect(police.sweepNow().resolved == 1)
        try await waitFor("everyone told is told it is resolved") {
            try nasional.ledger.escalations().escalations.last?.notice == .resolved && batam.ledger.escalations().escalations.count == 3 && kepri.ledger.escalations().escalations.count == 3
        }
        #expect(try police.notices("handoff.escalation_resolved").count == 1)
        #expect(try brokerLevel(network, sent.id) == 0)
        #expect(police.sweepNow().examined == 0, "nothing left to look at until the respond deadline")
    }

    @Test func theRespondAndCompleteClocksEscalateAndTheRecipientIsWarnedFirst() async throws {
        let clock = ManualClock()
        let network = try Network(clock: clock)
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        let batam = try network.adapter("gugus-tugas-batam")
        let sent = try police.refer(routineRequest())
        try await waitFor("received") { try police.ledger.view(sent.id)?.status == .received }

        clock.advance(by: 3 * 86400 - 12 * 3600)
        #expect(hospital.sweepNow().warned == 1)
        let soon = try hospital.notices("handoff.due_soon")
        let dueRespond = try hospital.ledger.view(sent.id)?.dueRespond
        #expect(soon.count == 1 && soon[0].clock == .respond && soon[0].due == dueRespond)
        #expect(police.sweepNow().escalated == 0, "warned, not late")

        clock.advance(by: 12 * 3600 + 1)
        #expect(hospital.sweepNow().warned == 1)
        #expect(try hospital.notices("handoff.overdue").map(\.clock) == [Breach.respond])
        #expect(police.sweepNow().escalated == 1)
        try await waitFor("the task force is told of the respond clock") { try batam.ledger.escalations().escalations.first?.clock == .respond }

        _ = try hospital.change(sent.id, to: .accepted)
        try await waitFor("the police see it accepted") { try police.ledger.view(sent.id)?.status == .accepted }
        #expect(police.sweepNow().resolved == 1, "answered: resolved")

        clock.advance(by: 4 * 86400)  // day 7 and a bit: past the Art. 52 seven days
        #expect(police.sweepNow().escalated == 1)
        #expect(hospital.sweepNow().warned == 1)
        #expect(try hospital.notices("handoff.overdue").map(\.clock) == [Breach.respond, .complete])
        try await waitFor("the task force is told of the complete clock") { try batam.ledger.escalations().escalations.last?.clock == .complete }
    }

    @Test func aHandoffResolvedBeforeItsDeadlinesNeverEscalates() async throws {
        let clock = ManualClock()
        let network = try Network(clock: clock)
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        let sent = try police.refer(routineRequest())
        try await waitFor("received") { try hospital.ledger.view(sent.id) != nil }
        for status in [HandoffStatus.accepted, .inProgress] { _ = try hospital.change(sent.id, to: status) }
        _ = try hospital.change(sent.id, to: .completed, outcome: .serviceProvided, note: UpdateNote(outcome: "counselling sessions held"))
        try await waitFor("the police see it completed") { try police.ledger.view(sent.id)?.status == .completed }

        for _ in 0..<4 {
            clock.advance(by: 15 * 86400)
            let sender = police.sweepNow(), recipient = hospital.sweepNow()
            #expect(sender.escalated == 0 && sender.resolved == 0 && recipient.warned == 0)
        }
        #expect(try police.ledger.escalations().escalations.isEmpty)
        let pending = try await police.ledger.pool.read { (db: Database) throws -> Int? in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM referral WHERE next_check_at IS NOT NULL") }
        #expect(pending == 0, "a finished handoff leaves the sweep's index")
    }

    /// A status change that leaves nothing to do is scheduled for its next deadline there and
    /// then, on both sides, not left for the sweep to read and write again; one that leaves
    /// something to do (an escalation to resolve) is the sweep's at once.
    @Test func aStatusChangeIsScheduledForTheNextCheckTheSweepWouldHaveChosen() async throws {
        let clock = ManualClock()
        let network = try Network(clock: clock)
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        let sent = try police.refer(routineRequest())
        try await waitFor("the police see it received") { try police.ledger.view(sent.id)?.status == .received }
        func nextCheck(_ adapter: Adapter) async throws -> Date? {
            let stamp = try await adapter.ledger.pool.read { (db: Database) throws -> String? in
                try String.fetchOne(db, sql: "SELECT next_check_at FROM referral WHERE id = ?", arguments: [sent.id])
            }
            return stamp.flatMap(Timestamp.parse)
        }
        // Stored to the millisecond.
        func isAbout(_ date: Date?, _ expected: Date) -> Bool { date.map { abs($0.timeIntervalSince(expected)) < 0.0005 } ?? false }
        let view = try #require(try police.ledger.view(sent.id))
        // The sender: received, so the respond clock is next, just after its deadline.
        #expect(isAbout(try await nextCheck(police), view.dueRespond + 0.001))
        #expect(police.sweepNow().examined == 0, "nothing for the sweep to look at")

        // The recipient: accepted, so its next word is the warning before the complete clock.
        _ = try hospital.change(sent.id, to: .accepted)
        let lead = try #require(Network.sla.escalation.warnBefore[.routine])
        #expect(isAbout(try await nextCheck(hospital), view.dueComplete - lead))
        #expect(hospital.sweepNow().examined == 0)
        try await waitFor("the police see it accepted") { try police.ledger.view(sent.id)?.status == .accepted }
        #expect(isAbout(try await nextCheck(police), view.dueComplete + 0.001))
        #expect(police.sweepNow().examined == 0)

        // Escalated, then answered: the change leaves a RESOLVED to send, so the sweep looks at once.
        clock.advance(by: 7 * 86400 + 1)
        #expect(police.sweepNow().escalated == 1)
        _ = try hospital.change(sent.id, to: .inProgress)
        _ = try hospital.change(sent.id, to: .completed, outcome: .serviceProvided, note: UpdateNote(outcome: "counselling sessions held"))
        try await waitFor("the police see it completed") { try police.ledger.view(sent.id)?.status == .completed }
        let due = try #require(try await nextCheck(police))
        #expect(due <= clock.now())
        #expect(police.sweepNow().resolved == 1)
        #expect(try await nextCheck(police) == nil, "then never again")
    }

    @Test func anAdapterThatWasDownWhenADeadlinePassedEscalatesOnceWhenItStarts() async throws {
        let clock = ManualClock()
        let network = try Network(clock: clock)
        var police = try network.adapter("polda-kepri")
        let batam = try network.adapter("gugus-tugas-batam")
        let sent = try police.refer(routineRequest())
        try await waitFor("committed") { try police.ledger.view(sent.id)?.delivery == "sent" }
        network.stopAdapter("polda-kepri")

        clock.advance(by: 10 * 86400)  // every clock has run out, and level 2's interval many times over
        police = try network.adapter("polda-kepri")
        let caughtUp = police.sweepNow()
        #expect(caughtUp.escalated == 1, "one notice on start, not one per missed step")
        try await waitFor("the task force is told") { try batam.ledger.escalations().escalations.count == 1 }
        let notice = try #require(try batam.ledger.escalations().escalations.first)
        #expect(notice.level == 1 && notice.clock == .complete, "the latest clock that ran out, at level 1")
        #expect(police.sweepNow().escalated == 0)
        clock.advance(by: 4 * 3600)
        #expect(police.sweepNow().escalated == 1, "then level 2 after the interval")
    }
}

import Foundation
import GRDB
import RujukAdapter
import RujukCore
import Testing

/// A referral that nobody answers must not keep the person's data for ever: after the open
/// retention period, announced to the agency system first, its personal data goes.
@Suite(.timeLimit(.minutes(5))) struct OpenRetentionTests {
    @Test func anOpenHandoffIsAnnouncedThenLosesItsPersonalDataButStaysOpen() async throws {
        let clock = ManualClock(Date())
        let network = try Network(clock: clock)
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        let unanswered = try police.refer(Network.request(name: "Siti Tak Terjawab"))
        let closed = try police.refer(Network.request())
        try await waitFor("the hospital has both") { try [unanswered, closed].allSatisfy { try hospital.ledger.view($0.id) != nil } }
        _ = try hospital.change(closed.id, to: .declined, reason: .other, note: UpdateNote(reason: "no capacity"))
        try await waitFor("the police see the decline") { try police.ledger.view(closed.id)?.status == .declined }

        let year: TimeInterval = 365 * 86400, month: TimeInterval = 30 * 86400
        for ledger in [police.ledger, hospital.ledger] {
            // Not yet within the notice period: nothing happens.
            let result = try ledger.expireOpen(createdBefore: clock.now() - year, notice: month)
            #expect(result.noticed == 0 && result.purged == 0)
        }
        clock.advance(by: year - month + 3600)
        for ledger in [police.ledger, hospital.ledger] {
            let before = try ledger.notifications(after: 0).count
            let result = try ledger.expireOpen(createdBefore: clock.now() - year, notice: month)
            #expect(result.noticed == 1 && result.purged == 0, "announced, not removed yet")
            let notes = try ledger.notifications(after: 0).dropFirst(before).map { try JSONCoding.decode(RujukAdapter.Notification.self, from: $0.1, what: "n") }
            let notice = try #require(notes.first { $0.type == "handoff.retention_notice" })
            #expect(notice.referralId == unanswered.id)
            #expect(notice.due.map { $0 >= clock.now() + month - 1 } == true, "the removal is at least the notice period away")
            #expect(try ledger.view(unanswered.id)?.body?.subject.name == "Siti Tak Terjawab", "still there")
            let again = try ledger.expireOpen(createdBefore: clock.now() - year, notice: month)
            #expect(again.noticed == 0 && again.purged == 0, "announced once")
        }
        clock.advance(by: month)
        for ledger in [police.ledger, hospital.ledger] {
            let result = try ledger.expireOpen(createdBefore: clock.now() - year, notice: month)
            #expect(result.purged == 1)
            let view = try #require(try ledger.view(unanswered.id))
            #expect(view.body == nil && view.status == .received, "the person is gone; the handoff stays open")
            #expect(try ledger.notifications(after: 0).contains { String(decoding: $0.1, as: UTF8.self).contains("handoff.personal_data_removed") })
            #expect(try ledger.view(closed.id)?.body != nil, "a closed handoff is the closed retention's business")
        }
        // Nothing of the person is left in either ledger's file.
        for ledger in [police.ledger, hospital.ledger] {
            let raw = try await ledger.pool.read { db in try Data.fetchAll(db, sql: "SELECT COALESCE(body, X'') || raw FROM referral WHERE id = ?", arguments: [unanswered.id]) }
            #expect(raw.allSatisfy { !String(decoding: $0, as: UTF8.self).contains("Siti Tak Terjawab") && $0.isEmpty })
        }
    }
}

import Foundation
import GRDB
import RujukAdapter
import RujukBroker
import RujukCore
import RujukStorage
import Testing

@Suite(.serialized, .timeLimit(.minutes(5))) struct EndToEndTests {
    func brokerHistory(_ network: Network, _ id: String) throws -> [String] {
        try network.broker.store.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT status, by_agency FROM handoff_event WHERE referral_id = ? ORDER BY seq", arguments: [id]).map { "\($0[0] as String):\($0[1] as String)" }
        }
    }

    func ledgerHistory(_ adapter: Adapter, _ id: String) throws -> [String] {
        try adapter.ledger.view(id)?.history?.map { "\($0.status.rawValue):\($0.by)" } ?? []
    }

    @Test func referralIsDeliveredAcceptedAndCompletedWithTheSameHistoryEverywhere() async throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")

        let sent = try police.refer(Network.request())
        #expect(sent.delivery == "queued")
        try await waitFor("the hospital stores the referral") { try hospital.ledger.view(sent.id) != nil }
        try await waitFor("the police see it received") { try police.ledger.view(sent.id)?.status == .received }
        #expect(try police.ledger.view(sent.id)?.delivery == "sent")
        let inbound = try #require(try hospital.ledger.view(sent.id))
        #expect(inbound.body?.subject.name == "Siti Contoh", "the recipient reads the personal part")
        #expect(inbound.dueRespond == sent.dueRespond, "every party sees the same deadlines")

        _ = try hospital.change(sent.id, to: .accepted)
        _ = try hospital.change(sent.id, to: .inProgress)
        _ = try hospital.change(sent.id, to: .completed, outcome: .serviceProvided, note: UpdateNote(outcome: "examined and treated; discharged to shelter"))
        try await waitFor("the police see it completed") { try police.ledger.view(sent.id)?.status == .completed }
        try await waitFor("the broker sees it completed") {
            try network.broker.store.pool.read { try String.fetchOne($0, sql: "SELECT status FROM handoff WHERE id = ?", arguments: [sent.id]) } == "completed"
        }

        let expected = ["requested:polda-kepri", "received:rsud-embung-fatimah", "accepted:rsud-embung-fatimah", "in_progress:rsud-embung-fatimah", "completed:rsud-embung-fatimah"]
        #expect(try brokerHistory(network, sent.id) == expected)
        #expect(try ledgerHistory(police, sent.id) == expected)
        #expect(try ledgerHistory(hospital, sent.id) == expected)

        // Both acknowledgments are on record at the sender (COMMIT) and the recipient (RECEIPT).
        #expect(try police.ledger.acknowledgments(for: sent.id).map(\.kind) == ["commit_received"])
        #expect(try hospital.ledger.acknowledgments(for: sent.id).map(\.kind).first == "receipt_sent")
    }

    /// The ledger reads a handoff's columns by position (`Ledger.ViewColumn`) in four places:
    /// the API's view, its list, the handoff in a notification, and the sweep's. Each one here
    /// gives every field as it was stored, and the same as the others.
    @Test func everyReadingOfAHandoffGivesItsFieldsAsStored() async throws {
        let clock = ManualClock()
        let network = try Network(clock: clock)
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        var request = Network.request(service: .psychosocialSupport)
        request.priority = .routine
        request.caseRef = "POLDA-KEPRI-2026-0417"
        request.location = Location(province: "ID-KR", regency: "21.72")
        let sent = try police.refer(request)
        try await waitFor("received") { try police.ledger.view(sent.id)?.status == .received }

        let inbound = try #require(try hospital.ledger.view(sent.id))
        #expect(inbound.id == sent.id && inbound.caseRef == "POLDA-KEPRI-2026-0417" && inbound.from == "polda-kepri" && inbound.to == "rsud-embung-fatimah")
        // Against what was asked for, not against another reading through the same code.
        #expect(inbound.service == .psychosocialSupport && inbound.priority == .routine && inbound.location == Location(province: "ID-KR", regency: "21.72") && inbound.reason == request.reason)
        // Routine psychosocial support: receive within 1 day, respond within 3, complete within 7.
        #expect(inbound.createdAt == sent.createdAt && inbound.dueReceive == inbound.createdAt + 86400)
        #expect(inbound.dueRespond == inbound.createdAt + 3 * 86400 && inbound.dueComplete == inbound.createdAt + 7 * 86400)
        #expect(inbound.updatedAt >= inbound.createdAt)
        #expect(inbound.status == .received && inbound.direction == "inbound" && inbound.delivery == "received" && inbound.overdue == nil)
        #expect(inbound.body?.subject.name == "Siti Contoh" && inbound.history?.map(\.status) == [.requested, .received])
        var envelope = inbound
        envelope.body = nil
        envelope.history = nil
        #expect(try hospital.ledger.view(sent.id, history: false, body: false) == envelope)
        #expect(try hospital.ledger.list(direction: "inbound", status: nil, service: nil, overdueOnly: false, page: PageRequest(limit: 10)).handoffs == [envelope])
        #expect(try hospital.ledger.list(direction: "outbound", status: nil, service: nil, overdueOnly: false, page: PageRequest(limit: 10)).handoffs.isEmpty)

        let outbound = try #require(try police.ledger.view(sent.id, history: false, body: false))
        #expect(outbound.direction == "outbound" && outbound.delivery == "sent" && outbound.status == .received)
        #expect(outbound.caseRef == inbound.caseRef && outbound.location == inbound.location && outbound.dueComplete == inbound.dueComplete)
        // The `received` event's notification at the sender read the handoff inside the
        // transaction that applied the event.
        let updated = try #require(try police.notices("handoff.updated").last)
        #expect(updated.handoff == outbound)

        // The sweep reads the view's columns and then its clocks' (those are SLATests' part).
        clock.advance(by: 3 * 86400 - 12 * 3600)
        #expect(hospital.sweepNow().warned == 1)
        let soon = try #require(try hospital.notices("handoff.due_soon").first)
        #expect(soon.clock == .respond && soon.due == inbound.dueRespond)
        #expect(soon.handoff == (try hospital.ledger.view(sent.id, history: false, body: false)))
        #expect(hospital.sweepNow().warned == 0, "told once")
    }

    @Test func offlineRecipientReceivesOnConnectInOrder() async throws {
        let network = try Network()
        let consulate = try network.adapter("kjri-johor-bahru")
        var ids: [String] = []
        for index in 0..<20 {
            var request = Network.request(to: "uptd-ppa-batam", service: .shelter)
            request.caseRef = "KJRI-JHB-\(index)"
            ids.append(try consulate.refer(request).id)
        }
        try await waitFor("the broker commits all 20") { try consulate.ledger.list(direction: "outbound", status: nil, service: nil, overdueOnly: false, page: PageRequest(limit: 100)).handoffs.allSatisfy { $0.delivery == "sent" } }
        #expect(try consulate.ledger.view(ids[0])?.status == .requested, "nobody has received it yet")

        let shelter = try network.adapter("uptd-ppa-batam")
        try await waitFor("the shelter receives all 20") { try shelter.ledger.list(direction: "inbound", status: nil, service: nil, overdueOnly: false, page: PageRequest(limit: 100)).handoffs.count == 20 }
        let order = try shelter.ledger.notifications(after: 0).compactMap { try JSONCoding.decode(Notification.self, from: $0.1, what: "n").referralId }
        #expect(order == ids, "delivered in the order the broker committed them")
        for (_, payload) in try shelter.ledger.notifications(after: 0) {
            let notification = try JSONCoding.decode(Notification.self, from: payload, what: "n")
            #expect(Array(try JSONCoding.encoder().encode(notification)) == payload, "the hand-written notification bytes are Codable's")
        }
        try await waitFor("the consulate sees all 20 received") { try ids.allSatisfy { try consulate.ledger.view($0)?.status == .received } }
    }

    @Test func declineNeedsAReasonAndReachesTheSender() async throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        let lbh = try network.adapter("lbh-batam")
        let sent = try police.refer(Network.request(to: "lbh-batam", service: .legalAid))
        try await waitFor("LBH stores it") { try lbh.ledger.view(sent.id) != nil }
        #expect(throws: RujukError.self) { try lbh.change(sent.id, to: .declined) }
        #expect(throws: RujukError.self) { try lbh.change(sent.id, to: .completed, outcome: .serviceProvided, note: UpdateNote(outcome: "x")) }
        _ = try lbh.change(sent.id, to: .declined, reason: .conflictOfInterest, note: UpdateNote(reason: "already representing the accused"))
        try await waitFor("the police see the decline") { try police.ledger.view(sent.id)?.status == .declined }
        let decline = try #require(try police.ledger.view(sent.id)?.history?.last)
        #expect(decline.reason == .conflictOfInterest && decline.note?.reason == "already representing the accused", "the code, and the words opened")
    }

    @Test func storesRunWithSynchronousFull() throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        #expect(try network.broker.store.pool.synchronousLevel() == 2)
        #expect(try police.ledger.pool.synchronousLevel() == 2)
        let journal = try network.broker.store.pool.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
        #expect(journal == "wal")
        let migrations = try network.broker.store.pool.read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations") }
        #expect(migrations == ["v1", "v2-escalation", "v3-feed", "v4-consent", "v5-audit", "v6-checks-without-lists", "v7-agency-indexes-without-status",
                               "v8-envelope-codes"])
        let ledgerMigrations = try police.ledger.pool.read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid") }
        #expect(ledgerMigrations == ["v1", "v2-refused-delivery", "v3-sla", "v4-sealed", "v5-checks-without-lists", "v6-open-retention",
                                    "v7-envelope-codes", "v8-checkpoints", "v9-body-sealed-at-rest", "v10-notes-sealed-at-rest"])
    }

    @Test func aDeliveryTheLedgerCannotTakeIsRecordedReceiptedAndReportedOnce() throws {
        let network = try Network()
        let hospital = try network.adapter("rsud-embung-fatimah")
        let stranger = Fixtures.referral(to: "lbh-batam")
        let header = DeliveryHeader(kind: .referral, id: stranger.id, attempt: 1)
        let first = try hospital.ledger.storeDeliveries([(header, JSONCoding.encode(stranger))])
        #expect(first.receipts == [stranger.id], "receipted, so the broker stops redelivering it")
        #expect(first.refused.map(\.1.code) == [.notParty])
        #expect(try hospital.ledger.view(stranger.id) == nil, "not stored as a referral")
        let again = try hospital.ledger.storeDeliveries([(DeliveryHeader(kind: .referral, id: stranger.id, attempt: 2), JSONCoding.encode(stranger))])
        #expect(again.receipts == [stranger.id])
        let notices = try hospital.ledger.notifications(after: 0).map { try JSONCoding.decode(Notification.self, from: $0.1, what: "n") }
        #expect(notices.filter { $0.type == "delivery.refused" }.map(\.referralId) == [stranger.id], "reported once")
        #expect(notices.first?.error?.code == .notParty)
        let kept = try hospital.ledger.pool.read { try String.fetchOne($0, sql: "SELECT code FROM refused_delivery WHERE message_id = ?", arguments: [stranger.id]) }
        #expect(kept == "not_party")
    }

    @Test func adapterQueuesWhileTheBrokerIsDownAndSendsWhenItReturns() async throws {
        let network = try Network()
        let endpoint = network.broker.routerEndpoint
        network.broker.shutdown()
        let police = try network.adapter("polda-kepri", endpoint: endpoint)
        let sent = try police.refer(Network.request())
        #expect(try police.ledger.view(sent.id)?.delivery == "queued", "broker down means queued, not failed")
        try network.startBroker(router: endpoint)
        let hospital = try network.adapter("rsud-embung-fatimah")
        try await waitFor("delivered after the broker returns") { try hospital.ledger.view(sent.id) != nil }
        try await waitFor("the police see the COMMIT") { try police.ledger.view(sent.id)?.delivery == "sent" }
    }
}

import Foundation
import GRDB
import RujukAdapter
import RujukBroker
import RujukCore
import RujukStorage
import Testing

@Suite(.serialized) struct EndToEndTests {
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

        _ = try hospital.change(sent.id, to: .accepted, reason: nil, outcome: nil)
        _ = try hospital.change(sent.id, to: .inProgress, reason: nil, outcome: nil)
        _ = try hospital.change(sent.id, to: .completed, reason: nil, outcome: "examined and treated; discharged to shelter")
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

    @Test func offlineRecipientReceivesOnConnectInOrder() async throws {
        let network = try Network()
        let consulate = try network.adapter("kjri-johor-bahru")
        var ids: [String] = []
        for index in 0..<20 {
            var request = Network.request(to: "uptd-ppa-batam", service: .shelter)
            request.caseRef = "KJRI-JHB-\(index)"
            ids.append(try consulate.refer(request).id)
        }
        try await waitFor("the broker commits all 20") { try consulate.ledger.list(direction: "outbound", status: nil, service: nil, overdueOnly: false, limit: 100).allSatisfy { $0.delivery == "sent" } }
        #expect(try consulate.ledger.view(ids[0])?.status == .requested, "nobody has received it yet")

        let shelter = try network.adapter("uptd-ppa-batam")
        try await waitFor("the shelter receives all 20") { try shelter.ledger.list(direction: "inbound", status: nil, service: nil, overdueOnly: false, limit: 100).count == 20 }
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
        #expect(throws: RujukError.self) { try lbh.change(sent.id, to: .declined, reason: nil, outcome: nil) }
        #expect(throws: RujukError.self) { try lbh.change(sent.id, to: .completed, reason: nil, outcome: "x") }
        _ = try lbh.change(sent.id, to: .declined, reason: "conflict of interest: already representing the accused", outcome: nil)
        try await waitFor("the police see the decline") { try police.ledger.view(sent.id)?.status == .declined }
        #expect(try police.ledger.view(sent.id)?.history?.last?.reason == "conflict of interest: already representing the accused")
    }

    @Test func storesRunWithSynchronousFull() throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        #expect(try network.broker.store.pool.synchronousLevel() == 2)
        #expect(try police.ledger.pool.synchronousLevel() == 2)
        let journal = try network.broker.store.pool.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
        #expect(journal == "wal")
        let migrations = try network.broker.store.pool.read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations") }
        #expect(migrations == ["v1", "v2-escalation", "v3-feed", "v4-consent", "v5-audit"])
        let ledgerMigrations = try police.ledger.pool.read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid") }
        #expect(ledgerMigrations == ["v1", "v2-refused-delivery", "v3-sla", "v4-sealed"])
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

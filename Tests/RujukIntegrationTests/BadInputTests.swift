import CZeroMQ
import Foundation
import GRDB
import RujukBroker
import RujukCore
import Testing
import ZeroMQ

/// A bare RRP peer on a DEALER socket, to send the broker what no adapter would.
final class RawPeer {
    let socket: Socket

    /// A DEALER on the broker's ROUTER, over CurveZMQ with the key of `key` (by default the
    /// agency it says HELLO as, or polda-kepri), or with `curve` given, that exact key pair.
    init(_ network: Network, agency: String?, key: String? = nil, curve: KeyFile? = nil) throws {
        socket = try Socket(network.context, .dealer)
        try socket.set(ZMQ_RCVTIMEO, Int32(10_000))
        try socket.set(ZMQ_SNDTIMEO, Int32(10_000))
        let own = curve ?? Network.keys.agencies[key ?? agency ?? "polda-kepri"]!
        try socket.makeCurveClient(serverKey: Network.keys.broker.curvePublic, publicKey: own.curvePublic, secretKey: own.curveSecret)
        try socket.connect(network.broker.routerEndpoint)
        if let agency {
            try send(.hello(Hello(agency: agency, credit: 10, heartbeatMs: 60_000)))
            guard case .ready = try next() else { throw RujukError(.internal, "no READY") }
        }
    }

    func send(_ message: RRPMessage) throws { try socket.send(RRPCodec.encode(message)) }
    func send(frames: [[UInt8]]) throws { try socket.send(frames) }

    /// The next message other than PING and CHECKPOINT, which the broker sends on its own.
    func next() throws -> RRPMessage {
        while true {
            guard let message = try socket.receive() else { throw RujukError(.internal, "timed out") }
            let decoded = try RRPCodec.decode(message.frames, maxMessageBytes: .max)
            if case .ping = decoded { continue }
            if case .checkpoint = decoded { continue }
            return decoded
        }
    }

    func expectError(_ code: RujukError.Code, _ comment: Comment) throws {
        guard case .error(let error) = try next() else { Issue.record("expected ERROR \(code): \(comment)"); return }
        #expect(error.code == code, comment)
    }
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct BadInputTests {
    @Test func eachKindOfBadInputGetsItsErrorAndTheConnectionKeepsWorking() throws {
        let network = try Network()
        let peer = try RawPeer(network, agency: "polda-kepri")
        let header = RRPCodec.header

        try peer.send(frames: [Array("XYZ".utf8), Array("PING".utf8)])
        try peer.expectError(.badFrame, "malformed header frame")
        try peer.send(frames: [header])
        try peer.expectError(.badFrame, "missing command frame")
        try peer.send(frames: [header, Array("FROB".utf8)])
        try peer.expectError(.unknownCommand, "unknown command")
        try peer.send(frames: [header, Array("REFER".utf8), Array("{\"id\": 1}".utf8)])
        try peer.expectError(.schemaViolation, "schema violation")
        try peer.send(frames: [header, Array("REFER".utf8), [UInt8](repeating: 32, count: 300_000)])
        try peer.expectError(.tooLarge, "over the size limit")
        try peer.send(frames: [header, Array("REFER".utf8)] + Array(repeating: [UInt8](repeating: 32, count: 10_000), count: 100))
        try peer.expectError(.tooLarge, "a hundred frames, each small, together over the limit")
        try peer.send(frames: [header, Array("PING".utf8)] + Array(repeating: [], count: 20))
        try peer.expectError(.tooLarge, "too many frames")

        var unknown = Fixtures.referral(to: "dinas-atlantis")
        try peer.send(RRPCodec.refer(unknown))
        try peer.expectError(.unknownAgency, "unknown agency")
        unknown = Fixtures.referral(to: "rsud-embung-fatimah")
        unknown.service = .witnessProtection
        try peer.send(RRPCodec.refer(unknown))
        try peer.expectError(.serviceNotOffered, "service the recipient does not offer")
        try peer.send(RRPCodec.refer(Fixtures.referral(from: "lpsk")))
        try peer.expectError(.identityMismatch, "'from' names another agency")

        // A good referral still goes through, on the same connection.
        let good = Fixtures.referral()
        try peer.send(RRPCodec.refer(good))
        guard case .commit(let commit) = try peer.next() else { Issue.record("no COMMIT"); return }
        #expect(commit.ids == [good.id])

        // Illegal transition: the sender cannot accept its own referral.
        try peer.send(RRPCodec.update(HandoffEvent(referralId: good.id, by: "polda-kepri", status: .accepted, at: Date())))
        try peer.expectError(.illegalTransition, "sender accepting")
        try peer.send(RRPCodec.update(HandoffEvent(referralId: MessageID.make(), by: "polda-kepri", status: .cancelled, reason: .other, at: Date())))
        try peer.expectError(.notFound, "unknown handoff")

        // The same referral again (a retry after a lost COMMIT): COMMIT again, stored once.
        try peer.send(RRPCodec.refer(good))
        guard case .commit(let again) = try peer.next() else { Issue.record("no second COMMIT"); return }
        #expect(again.ids == [good.id])
        var changed = good
        changed.reason = .other
        try peer.send(RRPCodec.refer(changed))
        try peer.expectError(.duplicateConflict, "same id, other content")
        let count = try network.broker.store.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM handoff") }
        #expect(count == 1, "nothing refused was stored, the duplicate not twice")
    }

    /// A burst is committed in groups, each message acknowledged once and in order, whichever
    /// thread commits: every group handed to the committer thread (`inlineCommitMax` 0), and
    /// every group committed on the router thread itself (no limit). Which path a group takes by
    /// default depends on how fast the messages pile up, which a test cannot decide; so each
    /// path is taken for certain, one network each.
    @Test(arguments: [0, Int.max])
    func aBurstIsCommittedInGroupsAndEachMessageAcknowledgedOnce(inlineCommitMax: Int) async throws {
        // Sealed before the session opens: a peer silent for three heartbeats loses it.
        let burst = (0..<300).map { _ in Fixtures.referral() }
        let encoded = burst.map { RRPCodec.encode(RRPCodec.refer($0)) }
        let network = try Network(inlineCommitMax: inlineCommitMax)
        let peer = try RawPeer(network, agency: "polda-kepri")
        // Sent without waiting: while the router commits what it read, the rest piles up.
        for frames in encoded { try peer.send(frames: frames) }
        var acknowledged: [String] = []
        while acknowledged.count < burst.count {
            let message = try peer.next()
            guard case .commit(let commit) = message else { Issue.record("expected COMMIT, got \(message)"); return }
            acknowledged += commit.ids
        }
        #expect(acknowledged == burst.map(\.id), "every referral acknowledged once, in the order sent")
        // The router publishes its counts after it acknowledged the group that made them.
        try await waitFor("the router's counts include every commit") { network.broker.router.snapshot.committed == burst.count }
        let snapshot = network.broker.router.snapshot
        #expect(snapshot.batches < burst.count, "grouped: \(snapshot.batches) commits")
        #expect(snapshot.handedOver == (inlineCommitMax == 0 ? snapshot.batches : 0), "\(snapshot.handedOver) of \(snapshot.batches) groups on the committer thread")
        let stored = try await network.broker.store.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM handoff") }
        #expect(stored == burst.count)
    }

    @Test func commandsBeforeHelloAndHellosInAnotherNameAreRefused() throws {
        let network = try Network()
        let peer = try RawPeer(network, agency: nil)
        try peer.send(RRPCodec.refer(Fixtures.referral()))
        try peer.expectError(.noSession, "REFER before HELLO")
        try peer.send(.hello(Hello(agency: "dinas-atlantis", credit: 10, heartbeatMs: 1000)))
        try peer.expectError(.identityMismatch, "HELLO naming anyone but the key's agency (here: one not in the registry)")
        try peer.send(.hello(Hello(agency: "polda-kepri", versions: [1, 3], credit: 10, heartbeatMs: 1000)))
        try peer.expectError(.versionUnsupported, "no version in common")
    }

    @Test func undeliveredMessagesAreRedeliveredToTheNextSession() throws {
        // Raw peers send no heartbeats: a long interval keeps the sender's session up while
        // the test makes two more connections (CURVE handshakes) on a loaded machine.
        let network = try Network(heartbeatMs: 10_000)
        let sender = try RawPeer(network, agency: "polda-kepri")
        let referral = Fixtures.referral()
        try sender.send(RRPCodec.refer(referral))
        guard case .commit = try sender.next() else { Issue.record("no COMMIT"); return }

        let first = try RawPeer(network, agency: "rsud-embung-fatimah")
        guard case .deliver(let header, _) = try first.next() else { Issue.record("no DELIVER"); return }
        #expect(header.id == referral.id && header.attempt == 1)
        // No RECEIPT: a new session for the same agency gets it again.
        let second = try RawPeer(network, agency: "rsud-embung-fatimah")
        guard case .deliver(let again, let payload) = try second.next() else { Issue.record("no redelivery"); return }
        #expect(again.id == referral.id)
        #expect(again.attempt == 2, "a redelivery carries a higher attempt")
        #expect(payload == JSONCoding.encode(referral), "delivered byte for byte as stored")
        try second.send(.receipt(Receipt(ids: [referral.id])))
        guard case .deliver(let notice, _) = try sender.next() else { Issue.record("sender not told"); return }
        #expect(notice.kind == .event)
    }

    @Test func onlyAHandoffsSenderMayEscalateItAndOnlyToKnownAgencies() throws {
        let network = try Network()
        let police = try RawPeer(network, agency: "polda-kepri")
        let referral = Fixtures.referral()
        try police.send(RRPCodec.refer(referral))
        guard case .commit = try police.next() else { Issue.record("no COMMIT"); return }
        func escalation(from: String = "polda-kepri", to: String = "rsud-embung-fatimah", referral id: String = referral.id,
                        targets: [String] = ["gugus-tugas-batam"]) -> Escalation {
            Escalation(referralId: id, notice: .breach, level: 1, clock: .receive, from: from, to: to, targets: targets,
                       service: .medicalCare, priority: .urgent, province: "ID-KR", due: Date(), status: .requested, suggestions: [], at: Date())
        }
        try police.send(RRPCodec.escalate(escalation(from: "lpsk")))
        try police.expectError(.identityMismatch, "'from' names another agency")
        try police.send(RRPCodec.escalate(escalation(referral: MessageID.make())))
        try police.expectError(.notFound, "no such handoff")
        try police.send(RRPCodec.escalate(escalation(to: "lpsk")))
        try police.expectError(.schemaViolation, "'to' is not the handoff's recipient")
        try police.send(RRPCodec.escalate(escalation(targets: ["gugus-tugas-mars"])))
        try police.expectError(.unknownAgency, "a target outside the registry")

        let hospital = try RawPeer(network, agency: "rsud-embung-fatimah")
        guard case .deliver(let header, _) = try hospital.next() else { Issue.record("no DELIVER"); return }
        #expect(header.kind == .referral)
        let fromRecipient = Escalation(referralId: referral.id, notice: .breach, level: 1, clock: .receive, from: "rsud-embung-fatimah",
                                       to: "rsud-embung-fatimah", targets: ["gugus-tugas-batam"], service: .medicalCare, priority: .urgent,
                                       province: "ID-KR", due: Date(), status: .requested, suggestions: [], at: Date())
        try hospital.send(RRPCodec.escalate(fromRecipient))
        try hospital.expectError(.notParty, "the recipient does not escalate its own handoff")

        // The good one is committed once, however often it is sent, and delivered once.
        let good = RRPCodec.escalate(escalation())
        try police.send(good)
        try police.send(good)
        var commits = 0
        while commits < 2 {
            guard case .commit(let commit) = try police.next() else { Issue.record("expected COMMIT"); return }
            commits += commit.ids.count
        }
        let taskForce = try RawPeer(network, agency: "gugus-tugas-batam")
        guard case .deliver(let delivered, let payload) = try taskForce.next() else { Issue.record("no DELIVER"); return }
        #expect(delivered.kind == .escalation && payload == RRPCodec.encode(good)[2])
        let stored = try network.broker.store.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM escalation") }
        #expect(stored == 1, "a retransmission is deduplicated")
    }
}

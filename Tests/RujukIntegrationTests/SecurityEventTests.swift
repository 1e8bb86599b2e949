import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import RujukAdapter
import RujukBroker
import RujukCore
import Testing
import ZeroMQ

/// A swift-log handler that keeps every line, so a test can read what a broker or an adapter
/// in this process logged.
/// GETs `path` from an HTTP server on 127.0.0.1 and returns the body, or nil when no answer
/// comes within `timeout`.
func fetchJSON(port: Int, path: String, timeout: TimeInterval = 5) async -> [String: Any]? {
    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
    request.timeoutInterval = timeout
    guard let (data, _) = try? await URLSession.shared.data(for: request) else { return nil }
    return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
}

/// Refusals that point at an attack are logged as such (warning, `security` metadata), counted
/// on `/health`, and their lines rate-limited.
@Suite(.serialized, .timeLimit(.minutes(3))) struct SecurityEventTests {
    @Test func forgedUpdatesEscalationsAndUnknownKeysAreSecurityWarningsCountedOnHealth() async throws {
        let network = try Network()
        network.broker.shutdown()
        let log = CapturedLog()
        try network.startBroker(logger: log.logger())
        let broker = network.broker!
        let server = Task { try await broker.run() }
        defer { server.cancel() }

        let police = try RawPeer(network, agency: "polda-kepri")
        let referral = Fixtures.referral()
        try police.send(RRPCodec.refer(referral))
        guard case .commit = try police.next() else { Issue.record("no COMMIT"); return }
        // LBH Batam is no party to the police's referral to the hospital.
        let stranger = try RawPeer(network, agency: "lbh-batam")
        let forged = HandoffEvent(referralId: referral.id, by: "lbh-batam", status: .accepted, reason: nil, outcome: nil, at: Date())
        try stranger.send(RRPCodec.update(forged))
        try stranger.expectError(.notParty, "an update by an agency that is not a party")
        let escalation = Escalation(referralId: referral.id, notice: .breach, level: 1, clock: .receive, from: "lbh-batam",
                                    to: "rsud-embung-fatimah", targets: ["gugus-tugas-batam"], service: .medicalCare, priority: .urgent,
                                    province: "ID-KR", due: Date(), status: .requested, suggestions: [], at: Date())
        try stranger.send(RRPCodec.escalate(escalation))
        try stranger.expectError(.notParty, "an escalation by an agency that is not the sender")

        let unknown = try CurveKeyPair.generate()
        let socket = try Socket(network.context, .dealer)
        defer { socket.close() }
        let events = try SocketMonitor(socket, context: network.context, kinds: SocketEvent.Kind.handshakeFailures)
        defer { events.close() }
        try socket.makeCurveClient(serverKey: Network.keys.broker.curvePublic, publicKey: unknown.publicKey, secretKey: unknown.secretKey)
        try socket.connect(network.broker.routerEndpoint)
        #expect(try events.wait(for: .handshakeFailedAuth, timeoutMilliseconds: 10_000) != nil)

        let notParty = log.security(.notParty)
        #expect(notParty.count == 2, "the forged UPDATE and ESCALATE, each a warning tagged security")
        #expect(notParty.allSatisfy { $0.metadata["agency.id"]?.description == "lbh-batam" })
        #expect(log.security(.unknownKey).count == 1)
        #expect(!log.all.contains { $0.message == "refused" && $0.level == .info && $0.metadata["error.code"]?.description == "not_party" })

        try await waitFor("the HTTP server listens") { broker.boundHTTPPort != nil }
        let health = try #require(await fetchJSON(port: broker.boundHTTPPort!, path: "/health", timeout: 20))
        let counts = health["security_events"] as? [String: Int]
        #expect(counts?["not_party"] == 2 && counts?["unknown_key"] == 1, "\(String(describing: counts))")
    }

    @Test func aDeliveryWhoseSealDoesNotOpenIsASecurityEventAtTheAdapter() async throws {
        let network = try Network()
        let log = CapturedLog()
        let hospital = try network.adapter("rsud-embung-fatimah", logger: log.logger())
        let server = Task { try await hospital.run() }
        defer { server.cancel() }
        // The police's referral with its sealed part replaced: it does not open for the hospital.
        var referral = Fixtures.referral()
        referral.sealed = Fixtures.referral(name: "Another Person").sealed
        let police = try RawPeer(network, agency: "polda-kepri")
        try police.send(RRPCodec.refer(referral))
        guard case .commit = try police.next() else { Issue.record("no COMMIT"); return }
        try await waitFor("the seal is refused") { !log.security(.sealInvalid).isEmpty }
        try await waitFor("the API listens") { hospital.boundHTTPPort != nil }
        let health = try #require(await fetchJSON(port: hospital.boundHTTPPort!, path: "/health", timeout: 20))
        #expect((health["security_events"] as? [String: Int])?["seal_invalid"] == 1)
    }

    @Test func manyUnknownKeyHandshakesWriteABoundedNumberOfLogLines() async throws {
        let network = try Network()
        network.broker.shutdown()
        let log = CapturedLog()
        try network.startBroker(limits: BrokerLimits(maxConnectionsPerAddress: 1000, securityLogLines: 10), logger: log.logger())
        let attempts = 300
        // Each socket keeps its connection refused (a ZAP refusal is final for it), so one
        // handshake each; a few at a time, closed as they are refused.
        for _ in 0..<(attempts / 20) {
            var sockets: [(Socket, SocketMonitor)] = []
            for _ in 0..<20 {
                let unknown = try CurveKeyPair.generate()
                let socket = try Socket(network.context, .dealer)
                let events = try SocketMonitor(socket, context: network.context, kinds: SocketEvent.Kind.handshakeFailures)
                try socket.makeCurveClient(serverKey: Network.keys.broker.curvePublic, publicKey: unknown.publicKey, secretKey: unknown.secretKey)
                try socket.connect(network.broker.routerEndpoint)
                sockets.append((socket, events))
            }
            for (socket, events) in sockets {
                #expect(try events.wait(for: .handshakeFailedAuth, timeoutMilliseconds: 10_000) != nil)
                events.close()
                socket.close()
            }
        }
        #expect(network.broker.router.securityEvents.snapshot["unknown_key"] == attempts, "every refusal is counted")
        let lines = log.all.filter { $0.metadata["security"]?.description == "unknown_key" }
        #expect(lines.count == 10, "at most security_log_lines a minute; got \(lines.count)")
    }
}

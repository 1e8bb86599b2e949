import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import RujukAdapter
import RujukCore
import Testing

@Suite(.serialized, .timeLimit(.minutes(5))) struct StreamAndStatusTests {
    @Test func brokerStatusAPIListsAndShowsHandoffsWithHistory() async throws {
        let network = try Network()
        let broker = network.broker!
        let task = Task { try await broker.run() }
        defer { task.cancel() }
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        let sent = try police.refer(Network.request())
        try await waitFor("received") { try police.ledger.view(sent.id)?.status == .received }
        _ = try hospital.change(sent.id, to: .accepted)
        try await waitFor("the HTTP server listens") { broker.boundHTTPPort != nil }
        let base = "http://127.0.0.1:\(broker.boundHTTPPort!)"
        try await waitFor("accepted at the broker") {
            try network.broker.store.pool.read { try String.fetchOne($0, sql: "SELECT status FROM handoff WHERE id = ?", arguments: [sent.id]) } == "accepted"
        }

        let (listData, _) = try await statusGET("\(base)/api/handoffs?agency=rsud-embung-fatimah&status=accepted")
        let list = try JSONCoding.decoder().decode(HandoffList.self, from: listData)
        #expect(list.handoffs.map(\.id) == [sent.id])
        #expect(list.handoffs.first?.body == nil)
        let (none, _) = try await statusGET("\(base)/api/handoffs?service=shelter")
        #expect(try JSONCoding.decoder().decode(HandoffList.self, from: none).handoffs.isEmpty)
        let (overdue, _) = try await statusGET("\(base)/api/handoffs?overdue=true")
        #expect(try JSONCoding.decoder().decode(HandoffList.self, from: overdue).handoffs.isEmpty, "nothing is overdue yet")

        let (oneData, _) = try await statusGET("\(base)/api/handoffs/\(sent.id)")
        let one = try JSONCoding.decoder().decode(HandoffView.self, from: oneData)
        #expect(one.history?.map(\.status) == [.requested, .received, .accepted])
        let (_, missing) = try await statusGET("\(base)/api/handoffs/\(MessageID.make())")
        #expect((missing as? HTTPURLResponse)?.statusCode == 404)
        let (_, badFilter) = try await statusGET("\(base)/api/handoffs?status=lost")
        #expect((badFilter as? HTTPURLResponse)?.statusCode == 422)
        let (health, _) = try await URLSession.shared.data(from: URL(string: "\(base)/health")!)
        let healthObject = try JSONSerialization.jsonObject(with: health) as? [String: Any]
        #expect(healthObject?["synchronous"] as? String == "full")
        #expect((healthObject?["connected"] as? [String])?.contains("polda-kepri") == true)
        let audit = try network.broker.store.verifyAudit()
        #expect(healthObject?["audit_head"] as? String == audit.head && healthObject?["audit_records"] as? Int == audit.records,
                "the head to record elsewhere, as `rujuk audit verify` computes it")
    }

    /// Reads an SSE stream with curl (a real HTTP client, in its own process) until `count`
    /// events have arrived or 10 s have passed.
    func readEvents(port: Int, token: String, lastEventID: Int?, count: Int) throws -> [(id: Int, data: String)] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sN", "--max-time", "10", "-H", "Authorization: Bearer \(token)"]
            + (lastEventID.map { ["-H", "Last-Event-ID: \($0)"] } ?? []) + ["http://127.0.0.1:\(port)/api/events"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        defer { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        var text = ""
        var events: [(id: Int, data: String)] = []
        while events.count < count {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
            events = text.components(separatedBy: "\n\n").compactMap { block in
                let lines = block.components(separatedBy: "\n")
                guard let id = lines.first(where: { $0.hasPrefix("id: ") }).flatMap({ Int($0.dropFirst(4)) }),
                      let data = lines.first(where: { $0.hasPrefix("data: ") }) else { return nil }
                return (id, String(data.dropFirst(6)))
            }
        }
        return events
    }

    @Test func sseStreamsEachNotificationOnceAndResumesFromLastEventID() async throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        let task = Task { try await hospital.run() }
        defer { task.cancel() }
        try await waitFor("the API listens") { hospital.boundHTTPPort != nil }
        let port = hospital.boundHTTPPort!

        let first = try police.refer(Network.request())
        let live = Thread.detachedResult { try readEvents(port: port, token: "test-token", lastEventID: nil, count: 2) }
        try await waitFor("first stored") { try hospital.ledger.view(first.id) != nil }
        let second = try police.refer(Network.request())
        let events = try await live.value()
        #expect(events.count == 2)
        #expect(events.map(\.id) == [1, 2])
        #expect(events[0].data.contains(first.id) && events[0].data.contains("referral.received"))
        #expect(events[1].data.contains(second.id))

        // Off the cooperative pool: the server's handler needs those threads while curl reads.
        let resumed = try await Thread.detachedResult { try readEvents(port: port, token: "test-token", lastEventID: 1, count: 1) }.value()
        #expect(resumed.map(\.id) == [2], "resuming after 1 gives 2 and only 2")
    }

    @Test func webhookRetriesWithTheSameIdempotencyKeyUntilAccepted() async throws {
        struct Received: Sendable { var key: String; var body: String }
        let received = Locked<[Received]>([])
        let (port, server) = try await webhookEndpoint { key, body in
            let attempt = received.withLock { list in
                list.append(Received(key: key, body: body))
                return list.count
            }
            return attempt == 1 ? .internalServerError : .ok
        }
        defer { server.cancel() }

        let network = try Network()
        let police = try network.adapter("polda-kepri")
        let hospital = try hospitalWithWebhook(network, port: port)
        let task = Task { try await hospital.run() }
        defer { task.cancel(); hospital.shutdown() }

        let sent = try police.refer(Network.request())
        try await waitFor("delivered on the second attempt", timeout: 20) { received.current.count >= 2 }
        let calls = received.current
        #expect(calls[0].key == "rujuk-rsud-embung-fatimah-1")
        #expect(calls[1].key == calls[0].key, "a retry carries the same key")
        #expect(calls[1].body == calls[0].body)
        #expect(calls[1].body.contains(sent.id))
        try await waitFor("recorded as delivered") {
            try hospital.ledger.pool.read { try String.fetchOne($0, sql: "SELECT webhook_done_at FROM notification WHERE seq = 1") } != nil
        }
    }
    /// A backlog reaches the agency system's webhook in order, each notification once; one that
    /// fails is retried in its place, under its key, before those after it, and the ledger
    /// records each as delivered with its number of attempts.
    @Test func aBacklogReachesTheWebhookInOrderWithAFailureRetriedInPlace() async throws {
        let keys = Locked<[String]>([])
        let (port, server) = try await webhookEndpoint { key, _ in
            let first = keys.withLock { list in
                defer { list.append(key) }
                return !list.contains(key)
            }
            return first && key.hasSuffix("-3") ? .serviceUnavailable : .ok
        }
        defer { server.cancel() }

        // Queued at the broker while the hospital's adapter is not running: it stores them
        // together when it connects, and its webhook has a backlog.
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        for index in 0..<5 { _ = try police.refer(Network.request(name: "Pasien \(index)")) }
        try await waitFor("the broker holds the five") { try network.broker.store.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM delivery WHERE receipted_at IS NULL") } == 5 }
        let hospital = try hospitalWithWebhook(network, port: port)
        let task = Task { try await hospital.run() }
        defer { task.cancel(); hospital.shutdown() }

        try await waitFor("every notification recorded as delivered", timeout: 20) {
            try hospital.ledger.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM notification WHERE webhook_done_at IS NOT NULL") } == 5
        }
        #expect(keys.current == [1, 2, 3, 3, 4, 5].map { "rujuk-rsud-embung-fatimah-\($0)" })
        let attempts = try await hospital.ledger.pool.read { try Int.fetchAll($0, sql: "SELECT webhook_attempts FROM notification ORDER BY seq") }
        #expect(attempts == [1, 1, 2, 1, 1])
    }

    /// RSUD Embung Fatimah's adapter, not yet running, its webhook pointed at `port`.
    func hospitalWithWebhook(_ network: Network, port: Int) throws -> Adapter {
        let configuration = AdapterConfiguration(
            agency: "rsud-embung-fatimah", broker: network.broker.routerEndpoint, api: HostPort(host: "127.0.0.1", port: 0),
            dataDirectory: network.directory.appendingPathComponent("adapters"), token: "t", heartbeatMs: 500,
            webhook: WebhookConfiguration(url: URL(string: "http://127.0.0.1:\(port)/hook")!, maxAttempts: 5, timeout: 5),
            keys: Network.keys.agencies["rsud-embung-fatimah"], brokerKey: Network.keys.broker.curvePublic)
        return try Adapter(configuration: configuration, registry: Network.registry, sla: .standard, context: network.context, logger: network.logger)
    }
}

/// The agency system's end of a webhook: an HTTP server on a free loopback port answering
/// each POST with `answer(idempotency key, body)`. Cancel the task to stop it. The webhook
/// tests here and `CrashTests` share it.
func webhookEndpoint(_ answer: @escaping @Sendable (String, String) -> HTTPResponse.Status) async throws -> (port: Int, server: Task<Void, any Error>) {
    let router = Router()
    router.post("/hook") { request, _ -> HTTPResponse.Status in
        var request = request
        let body = try await request.collectBody(upTo: 1 << 20)
        return answer(request.headers[.init("Idempotency-Key")!] ?? "", String(buffer: body))
    }
    let port = Locked<Int?>(nil)
    let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } })
    let server = Task { try await app.run() }
    do {
        try await waitFor("webhook server listens") { port.current != nil }
    } catch {
        server.cancel()
        throw error
    }
    return (port.current!, server)
}

extension Thread {
    /// Runs blocking work on a thread of its own (not Swift concurrency's small pool) and
    /// hands back its result.
    static func detachedResult<T: Sendable>(_ work: @escaping @Sendable () throws -> T) -> ThreadResult<T> {
        let result = ThreadResult<T>()
        Thread { result.finish(Result { try work() }) }.start()
        return result
    }
}

final class ThreadResult<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, any Error>?
    private var waiter: CheckedContinuation<T, any Error>?

    func finish(_ value: Result<T, any Error>) {
        lock.lock()
        if let waiter { lock.unlock(); waiter.resume(with: value); return }
        result = value
        lock.unlock()
    }

    func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            lock.lock()
            if let result { lock.unlock(); continuation.resume(with: result); return }
            waiter = continuation
            lock.unlock()
        }
    }
}

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
import RujukAdapter
import RujukCore
import Testing
import ZeroMQ

/// The broker as a real child process, killed with SIGKILL.
final class BrokerProcess {
    static let binary = Network.root.appendingPathComponent(".build/debug/rujuk")
    let process = Process()
    let log: URL

    init(config: URL, directory: URL, logLevel: String? = nil) throws {
        log = directory.appendingPathComponent("broker-\(UUID().uuidString.prefix(8)).log")
        try #require(FileManager.default.createFile(atPath: log.path, contents: nil))
        process.executableURL = Self.binary
        process.arguments = ["broker", "--config", config.path]
        if let logLevel {
            process.environment = ProcessInfo.processInfo.environment.merging(["RUJUK_LOG_LEVEL": logLevel]) { $1 }
        }
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func terminate() async throws -> Int32 { try await terminateGracefully(process, "the broker") }

    /// A free TCP port on 127.0.0.1 as an endpoint.
    static func freeEndpoint(_ context: Context) throws -> String {
        "tcp://127.0.0.1:\(try Loopback.freePort())"
    }
}

/// Asks a child for a graceful stop (SIGTERM, as systemd does) and waits for its exit status.
func terminateGracefully(_ process: Process, _ what: String, timeout: TimeInterval = 15) async throws -> Int32 {
    Foundation.kill(process.processIdentifier, SIGTERM)
    try await waitFor("\(what) exits after SIGTERM", timeout: timeout) { !process.isRunning }
    return process.terminationStatus
}

/// An adapter as a real child process.
final class AdapterProcess {
    let process = Process()
    let log: URL

    /// `environment` is added to this process's, e.g. to arm a `FaultPoint`.
    init(config: URL, agency: String, directory: URL, environment: [String: String] = [:]) throws {
        log = directory.appendingPathComponent("adapter-\(agency)-\(UUID().uuidString.prefix(8)).log")
        try #require(FileManager.default.createFile(atPath: log.path, contents: nil))
        process.executableURL = BrokerProcess.binary
        process.arguments = ["adapter", "--agency", agency, "--config", config.path]
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func terminate() async throws -> Int32 { try await terminateGracefully(process, "the adapter") }
}

/// An adapter's configuration for a child process, its ledgers under `child-adapters`;
/// `extra` ends its `[adapter]` table (and may open a subtable after it).
/// With `token` nil the adapter makes its own token file.
func childAdapterConfig(_ network: Network, name: String, sla: URL? = nil, broker: String, apiPort: Int, token: String? = "t", extra: String) throws -> URL {
    let config = network.directory.appendingPathComponent(name)
    try FileManager.default.createDirectory(at: network.directory, withIntermediateDirectories: true)
    try """
        agencies = "\(Network.childFiles.agencies)"
        \(sla.map { "sla = \"\($0.path)\"" } ?? "")
        [adapter]
        \(Network.childFiles.adapter)
        broker = "\(broker)"
        api = "127.0.0.1:\(apiPort)"
        data_dir = "\(network.directory.appendingPathComponent("child-adapters").path)"
        \(token.map { "token = \"\($0)\"" } ?? "")
        heartbeat_ms = 300
        \(extra)
        """.write(to: config, atomically: true, encoding: .utf8)
    return config
}

@Suite(.serialized, .timeLimit(.minutes(10))) struct CrashTests {
    func childConfig(_ network: Network, endpoint: String) throws -> URL {
        try network.childBrokerConfig(endpoint: endpoint)
    }

    /// Reads a child adapter's ledger while it runs, read-only.
    func readChildLedger<T>(_ network: Network, _ agency: String, _ read: (Database) throws -> T) throws -> T {
        var configuration = Configuration()
        configuration.readonly = true
        // The child checkpoints with TRUNCATE now and then, locking the file for a moment.
        configuration.busyMode = .timeout(5)
        let path = network.directory.appendingPathComponent("child-adapters/\(agency)/ledger.sqlite").path
        return try DatabaseQueue(path: path, configuration: configuration).read(read)
    }

    @Test func sigtermStopsTheBrokerCleanlyAndNothingCommittedIsLost() async throws {
        let network = try Network()
        network.broker.shutdown()
        let endpoint = try BrokerProcess.freeEndpoint(network.context)
        let config = try childConfig(network, endpoint: endpoint)
        var broker = try BrokerProcess(config: config, directory: network.directory)
        let police = try network.adapter("polda-kepri", heartbeatMs: 300, endpoint: endpoint)
        let sent = try police.refer(Network.request())
        try await waitFor("committed") { try police.ledger.view(sent.id)?.delivery == "sent" }

        #expect(try await broker.terminate() == 0, "a graceful stop exits 0")
        let log = try String(contentsOf: broker.log, encoding: .utf8)
        #expect(log.contains("broker stopped"), "the broker says it stopped: \(log.suffix(400))")
        // The store closed: its log copied into the file and emptied, so the file stands alone.
        let wal = network.directory.appendingPathComponent("child-broker/broker.sqlite-wal").path
        #expect(((try? FileManager.default.attributesOfItem(atPath: wal)[.size] as? Int) ?? 0) == 0, "the broker's WAL is empty after a graceful stop")

        broker = try BrokerProcess(config: config, directory: network.directory)
        defer { broker.kill() }
        let hospital = try network.adapter("rsud-embung-fatimah", heartbeatMs: 300, endpoint: endpoint)
        try await waitFor("delivered after the restart") { try hospital.ledger.view(sent.id) != nil }
    }

    @Test func everyCommittedReferralReachesTheRecipientExactlyOnceAcrossBrokerSIGKILL() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: BrokerProcess.binary.path), "build the rujuk executable first")
        let network = try Network()
        network.broker.shutdown()
        let endpoint = try BrokerProcess.freeEndpoint(network.context)
        let config = try childConfig(network, endpoint: endpoint)
        var broker = try BrokerProcess(config: config, directory: network.directory)
        let police = try network.adapter("polda-kepri", heartbeatMs: 300, endpoint: endpoint)
        let hospital = try network.adapter("rsud-embung-fatimah", heartbeatMs: 300, endpoint: endpoint)

        func committed() throws -> Set<String> {
            try police.ledger.pool.read { Set(try String.fetchAll($0, sql: "SELECT message_id FROM outbox WHERE committed_at IS NOT NULL")) }
        }
        let total = 1000
        let killAt = Int.random(in: 150...650)
        var ids: [String] = []
        var killed = false
        for index in 0..<total {
            ids.append(try police.refer(Network.request()).id)
            if !killed, index >= killAt, try committed().count > 50 {
                broker.kill()
                killed = true
                // Whatever was committed before the kill must arrive.
                let before = try committed()
                #expect(!before.isEmpty && before.count < total, "killed in the middle: \(before.count) of \(total) committed")
                broker = try BrokerProcess(config: config, directory: network.directory)
            }
        }
        if !killed {
            try await waitFor("some commits") { try committed().count > 50 }
            broker.kill()
            broker = try BrokerProcess(config: config, directory: network.directory)
        }
        defer { broker.kill() }

        try await waitFor("every referral committed", timeout: 120) { try committed().count == total }
        try await waitFor("every referral at the hospital", timeout: 120) {
            try hospital.ledger.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM referral WHERE direction = 'inbound'") } == total
        }
        // The agency system's view: one referral.received notification per referral, none twice.
        let notices = try await hospital.ledger.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT referral_id, COUNT(*) FROM notification WHERE type = 'referral.received' GROUP BY referral_id").map { ($0[0] as String, $0[1] as Int) }
        }
        #expect(notices.count == total, "lost: \(total - notices.count)")
        #expect(notices.allSatisfy { $0.1 == 1 }, "duplicated: \(notices.filter { $0.1 > 1 }.count)")
        #expect(Set(notices.map(\.0)) == Set(ids), "unexpected referrals at the recipient")
        try await waitFor("the police see every referral received", timeout: 60) {
            try police.ledger.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM referral WHERE status = 'received'") } == total
        }
    }

    /// The police adapter as a child process with a 3-second receive clock, so its escalation
    /// happens in real time; the test decides what the broker is doing when it is killed. The
    /// broker must be down before the first clock runs out: with 1 second, a full `make test`
    /// on two cores once took that long from the POST to the shutdown, the escalation went out
    /// and was committed, and the first check failed.
    @Test func anEscalationReachesItsTargetExactlyOnceAcrossAnAdapterSIGKILL() async throws {
        let network = try Network()
        let endpoint = network.broker.routerEndpoint
        let apiPort = try #require(Int(try BrokerProcess.freeEndpoint(network.context).split(separator: ":").last ?? ""))
        try FileManager.default.createDirectory(at: network.directory, withIntermediateDirectories: true)
        let sla = network.directory.appendingPathComponent("sla.toml")
        try """
            [priority.urgent]
            receive = "3s"
            respond = "1h"
            complete = "7d"
            [escalation]
            level2_after = "1h"
            [escalation.agency.polda-kepri]
            level1 = ["gugus-tugas-batam"]
            """.write(to: sla, atomically: true, encoding: .utf8)
        var config = try childAdapterConfig(network, name: "child.toml", sla: sla, broker: endpoint, apiPort: apiPort, extra: #"sweep_interval = "50ms""#)
        let ledgerPath = network.directory.appendingPathComponent("child-adapters/polda-kepri/ledger.sqlite").path
        var police = try AdapterProcess(config: config, agency: "polda-kepri", directory: network.directory)
        defer { police.kill() }
        func waitForTheAPI(_ what: String) async throws {
            try await waitFor(what, timeout: 30) { (try? Data(contentsOf: URL(string: "http://127.0.0.1:\(apiPort)/health")!)) != nil }
        }
        try await waitForTheAPI("the child's API answers")
        func ledger<T>(_ read: (Database) throws -> T) throws -> T { try readChildLedger(network, "polda-kepri", read) }
        func refer() async throws -> String {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(apiPort)/api/referrals")!)
            request.httpMethod = "POST"
            request.setValue("Bearer t", forHTTPHeaderField: "Authorization")
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(JSONCoding.encode(Network.request()))
            let (data, response) = try await URLSession.shared.data(for: request)
            #expect((response as? HTTPURLResponse)?.statusCode == 201)
            return try JSONCoding.decode(HandoffView.self, from: Array(data), what: "created").id
        }
        func committed(_ id: String) throws -> Bool {
            try ledger { try String.fetchOne($0, sql: "SELECT committed_at FROM outbox WHERE message_id = ?", arguments: [id]) } != nil
        }
        func recordedEscalation(_ referral: String) throws -> String? {
            try ledger { try String.fetchOne($0, sql: "SELECT id FROM escalation WHERE referral_id = ? AND direction = 'sent'", arguments: [referral]) }
        }

        // 1. Recorded while the broker is down, so certainly not sent; then killed.
        let first = try await refer()
        try await waitFor("the referral is committed") { try committed(first) }
        network.broker.shutdown()
        try await waitFor("the escalation is recorded", timeout: 30) { try recordedEscalation(first) != nil }
        let firstEscalation = try #require(try recordedEscalation(first))
        police.kill()
        #expect(try !committed(firstEscalation), "killed between recording and sending")
        // On new ports, as a restarted broker process would find its own free at once (a socket
        // closed in this process may hold its port a while), and the child told of them.
        try network.startBroker(router: "tcp://127.0.0.1:\(Loopback.freePort())")
        config = try childAdapterConfig(network, name: "child.toml", sla: sla, broker: network.broker.routerEndpoint, apiPort: apiPort,
                                        extra: #"sweep_interval = "50ms""#)
        police = try AdapterProcess(config: config, agency: "polda-kepri", directory: network.directory)

        // 2. Killed as soon as it is recorded, with the broker up: sent or not, COMMIT or not.
        try await waitForTheAPI("the child's API answers again")
        let second = try await refer()
        try await waitFor("the second escalation is recorded", timeout: 30) { try recordedEscalation(second) != nil }
        police.kill()
        let secondEscalation = try #require(try recordedEscalation(second))
        police = try AdapterProcess(config: config, agency: "polda-kepri", directory: network.directory)

        let batam = try network.adapter("gugus-tugas-batam")
        do {
            try await waitFor("both escalations committed at the broker", timeout: 30) { try committed(firstEscalation) && committed(secondEscalation) }
        } catch {
            Issue.record("the child's log: \(((try? String(contentsOf: police.log, encoding: .utf8)) ?? "").suffix(1500))")
            throw error
        }
        try await waitFor("the task force has both", timeout: 30) { try batam.ledger.escalations().escalations.count == 2 }
        // Everything the broker holds for the task force has been receipted: nothing is on its way.
        try await waitFor("the task force's mailbox is empty") {
            try network.broker.store.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM delivery WHERE agency = 'gugus-tugas-batam' AND receipted_at IS NULL") } == 0
        }
        let told = try batam.ledger.notifications(after: 0).map { try JSONCoding.decode(RujukAdapter.Notification.self, from: $0.1, what: "n") }
            .filter { $0.type == "escalation.received" }.compactMap(\.escalation?.id)
        #expect(told.sorted() == [firstEscalation, secondEscalation].sorted(), "each escalation told once, none twice")
        let atBroker = try await network.broker.store.pool.read { try String.fetchAll($0, sql: "SELECT id FROM escalation") }
        #expect(atBroker.sorted() == [firstEscalation, secondEscalation].sorted())
        let sentByChild = try ledger { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM escalation WHERE direction = 'sent'") }
        #expect(sentByChild == 2, "recorded once each across both kills")

        // A graceful stop once it runs: exit 0, the ledger's log copied into the file and emptied.
        try await waitForTheAPI("the child's API answers after the last restart")
        #expect(try await police.terminate() == 0, "a graceful stop exits 0: \((try? String(contentsOf: police.log, encoding: .utf8))?.suffix(600) ?? "")")
        #expect(((try? FileManager.default.attributesOfItem(atPath: ledgerPath + "-wal")[.size] as? Int) ?? 0) == 0, "the ledger's WAL is empty after a graceful stop")
    }

    /// The webhook records what it POSTed once per round (`WebhookSender.round`, 16): an adapter
    /// killed in the middle of a round POSTs that round's delivered notifications again, under
    /// the same keys, and nothing else — never more than 16 (README, Guarantees). Killed here at
    /// the `webhook-posted` fault point, after its 21st POST was answered and before its round
    /// was recorded.
    @Test func aCrashInTheMiddleOfAWebhookRoundRepeatsThatRoundOnly() async throws {
        let network = try Network()
        let keys = Locked<[String]>([])
        let (port, server) = try await webhookEndpoint { key, _ in
            keys.withLock { $0.append(key) }
            return .ok
        }
        defer { server.cancel() }
        // 40 referrals queued at the broker for the hospital, whose adapter is not running yet.
        let police = try network.adapter("polda-kepri")
        for _ in 0..<40 { _ = try police.refer(Network.request()) }
        try await waitFor("the broker commits all 40") {
            try police.ledger.list(direction: "outbound", status: nil, service: nil, overdueOnly: false, page: PageRequest(limit: 100)).handoffs.filter { $0.delivery == "sent" }.count == 40
        }
        let config = try childAdapterConfig(network, name: "hospital.toml", sla: Network.root.appendingPathComponent("Config/sla.toml"),
                                            broker: network.broker.routerEndpoint, apiPort: try Loopback.freePort(),
                                            extra: "[adapter.webhook]\nurl = \"http://127.0.0.1:\(port)/hook\"")
        var hospital = try AdapterProcess(config: config, agency: "rsud-embung-fatimah", directory: network.directory,
                                          environment: [FaultPoint.environmentKey: "\(FaultPoint.webhookPosted.rawValue):21"])
        defer { hospital.kill() }
        try await waitFor("the adapter kills itself at its 21st POST", timeout: 60) { !hospital.process.isRunning }
        #expect(hospital.process.terminationReason == .uncaughtSignal && hospital.process.terminationStatus == SIGKILL)
        #expect(keys.current.count == 21, "the 21st POST was answered, then the process died")

        hospital = try AdapterProcess(config: config, agency: "rsud-embung-fatimah", directory: network.directory)
        let expected = (1...40).map { "rujuk-rsud-embung-fatimah-\($0)" }
        try await waitFor("the agency system has every notification", timeout: 60) { Set(keys.current).isSuperset(of: expected) }
        // Anything still on its way would be a repeat beyond the round: let the sender go idle.
        try await waitFor("the ledger records every notification delivered", timeout: 30) {
            try readChildLedger(network, "rsud-embung-fatimah") { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM notification WHERE webhook_done_at IS NULL") } == 0
        }
        let posted = keys.current
        var seen = Set<String>()
        #expect(posted.filter { seen.insert($0).inserted } == expected, "every notification, first POSTed in order")
        let repeated = posted.count - expected.count
        #expect((1...16).contains(repeated), "the crashed round's POSTs came again, at most a round's 16: \(repeated)")
        if (1...16).contains(repeated) {
            #expect(Array(posted[21..<(21 + repeated)]) == Array(posted[(21 - repeated)..<21]),
                    "what came again is the run of POSTs up to the crash, in order, and then the rest once")
            #expect(Array(posted[(21 + repeated)...]) == Array(expected[21...]))
        }
    }
}

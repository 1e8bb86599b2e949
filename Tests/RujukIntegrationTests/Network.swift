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

/// A real broker and real adapters in this process: real libzmq sockets on 127.0.0.1 with
/// ports picked by the kernel, real SQLite files in a temporary directory.
final class Network: @unchecked Sendable {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// Keys for the broker and every agency of the sample network, made once per test run.
    static let keys = try! EphemeralKeys(for: AgencyRegistry.load(root.appendingPathComponent("Config/agencies.toml")))
    /// Config/agencies.toml with those keys in it.
    static let registry = keys.apply(to: try! AgencyRegistry.load(root.appendingPathComponent("Config/agencies.toml")))
    /// The sample network's clocks and escalation ladder, Config/sla.toml.
    static let sla = try! SLAPolicy.load(root.appendingPathComponent("Config/sla.toml"))

    /// Files for child processes (`rujuk broker`, `rujuk adapter`, `rujuk watch`) that use
    /// the same keys: agencies.toml with every agency's public keys, each secret key file
    /// (mode 0600), and the lines that point a configuration at them.
    static let childFiles: (agencies: String, broker: String, adapter: String, keyDirectory: URL) = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-test-keys-\(ProcessInfo.processInfo.processIdentifier)")
        // A directory left by an earlier process with the same id holds other keys.
        try? FileManager.default.removeItem(at: directory)
        try! FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // Secret keys, even test ones, do not outlive the test process.
        atexit {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-test-keys-\(getpid())")
            try? FileManager.default.removeItem(at: path)
        }
        var lines: [String] = []
        for line in try! String(contentsOf: root.appendingPathComponent("Config/agencies.toml"), encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false) {
            lines.append(String(line))
            if line.hasPrefix("id = \""), let keys = keys.agencies[String(line.dropFirst(6).dropLast())] {
                lines.append("curve_key = \"\(keys.curvePublic)\"")
                lines.append("seal_key = \"\(keys.sealPublic!)\"")
            }
        }
        let agencies = directory.appendingPathComponent("agencies.toml")
        try! lines.joined(separator: "\n").write(to: agencies, atomically: true, encoding: .utf8)
        for (agency, file) in keys.agencies { try! file.write(to: directory.appendingPathComponent("\(agency).key")) }
        try! keys.broker.write(to: directory.appendingPathComponent("broker.key"))
        return (agencies.path, "key_file = \"\(directory.appendingPathComponent("broker.key").path)\"",
                "key_file = \"\(directory.path)/{agency}.key\"\nbroker_key = \"\(keys.broker.curvePublic)\"\nbroker_sign_key = \"\(keys.broker.signPublic!)\"",
                directory)
    }()

    /// What a ledger opened on its own, without an adapter, seals its personal data with:
    /// `agency`'s test keys, as its adapter would hold them.
    static func sealer(_ agency: String) throws -> Sealer {
        try Sealer(agency: agency, keys: keys.agencies[agency]!, registry: registry)
    }

    /// The bearer token of the broker's status API in these tests.
    static let statusToken = "test-status-token"

    let directory: URL
    let context = try! Context()
    let clock: any RujukCore.Clock
    /// The broker's `inlineCommitMax`, for a restart too.
    let inlineCommitMax: Int
    /// The broker's `checkpointInterval`, for a restart too.
    let checkpointInterval: TimeInterval
    var broker: Broker!
    var adapters: [String: Adapter] = [:]
    let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }()

    init(heartbeatMs: Int = 500, clock: any RujukCore.Clock = SystemClock(), inlineCommitMax: Int = BrokerConfiguration().inlineCommitMax,
         checkpointInterval: TimeInterval = BrokerConfiguration().checkpointInterval) throws {
        self.clock = clock
        self.inlineCommitMax = inlineCommitMax
        self.checkpointInterval = checkpointInterval
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-test-\(UUID().uuidString)")
        // Below the kernel's ephemeral range (Loopback.freePort), so that a test that restarts
        // the broker on the same port never finds it taken by some connection's source port.
        try startBroker(heartbeatMs: heartbeatMs, router: "tcp://127.0.0.1:\(Loopback.freePort())", monitor: "tcp://127.0.0.1:\(Loopback.freePort())")
    }

    /// A broker in this process. On the ports of the one before it (a restart), the bind is
    /// tried again while the port is still held, for up to 30 s: libzmq closes a socket's
    /// listener on its I/O thread after `zmq_close` has returned, so a port given up in this
    /// process is free a moment later, not at once (a restarted broker process has no such wait:
    /// its listeners went with the old process).
    func startBroker(heartbeatMs: Int = 500, router: String = "tcp://127.0.0.1:*", monitor: String = "tcp://127.0.0.1:*", httpPort: Int = 0, registry: AgencyRegistry? = nil,
                     limits: BrokerLimits = BrokerLimits(), logger: Logger? = nil) throws {
        var configuration = BrokerConfiguration(router: router, monitor: monitor, http: HostPort(host: "127.0.0.1", port: httpPort), dataDirectory: directory.appendingPathComponent("broker"), heartbeatMs: heartbeatMs, inlineCommitMax: inlineCommitMax, keys: Self.keys.broker,
                                                apiTokens: ["test-coordinator": Self.statusToken], checkpointInterval: checkpointInterval)
        configuration.limits = limits
        let deadline = Date() + 30
        while true {
            do {
                // A context of its own, as a broker process has: a broker started again in this
                // process then shares nothing with the one before (its ZAP endpoint, its reaper).
                broker = try Broker(configuration: configuration, registry: registry ?? Self.registry, context: Context(), clock: clock, logger: logger ?? self.logger)
                return
            } catch let error as ZMQError where error.code == EADDRINUSE && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
    }

    @discardableResult
    func adapter(_ agency: String, heartbeatMs: Int = 500, endpoint: String? = nil, logger: Logger? = nil,
                 brokerSignKey: String? = nil) throws -> Adapter {
        let configuration = AdapterConfiguration(
            agency: agency, broker: endpoint ?? broker.routerEndpoint, api: HostPort(host: "127.0.0.1", port: 0),
            dataDirectory: directory.appendingPathComponent("adapters"), token: "test-token", heartbeatMs: heartbeatMs,
            keys: Self.keys.agencies[agency], brokerKey: Self.keys.broker.curvePublic,
            brokerSignKey: brokerSignKey ?? Self.keys.broker.signPublic)
        let adapter = try Adapter(configuration: configuration, registry: Self.registry, sla: Self.sla, context: context, clock: clock, logger: logger ?? self.logger)
        adapters[agency] = adapter
        return adapter
    }

    /// Writes `<directory>/rujuk.toml` for a child `rujuk broker` on `endpoint` with the test
    /// keys, its store in `<directory>/child-broker`; `agencies` and an `[adapter]` table as given.
    func childBrokerConfig(endpoint: String, agencies: String = Network.childFiles.agencies, adapter: String? = nil,
                           http: String = "127.0.0.1:0", monitor: String = "tcp://127.0.0.1:*") throws -> URL {
        let config = directory.appendingPathComponent("rujuk.toml")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try """
            agencies = "\(agencies)"
            [broker]
            \(Self.childFiles.broker)
            router = "\(endpoint)"
            monitor = "\(monitor)"
            http = "\(http)"
            data_dir = "\(directory.appendingPathComponent("child-broker").path)"
            heartbeat_ms = 300
            \(adapter.map { "[adapter]\n" + $0 } ?? "")
            """.write(to: config, atomically: true, encoding: .utf8)
        return config
    }

    /// Makes `socket` a CurveZMQ client of the broker with `agency`'s key (by default a task
    /// force, which has the monitor role).
    func monitorKey(_ socket: Socket, as agency: String = "gugus-tugas-batam") throws {
        let own = Self.keys.agencies[agency]!
        try socket.makeCurveClient(serverKey: Self.keys.broker.curvePublic, publicKey: own.curvePublic, secretKey: own.curveSecret)
    }

    func stopAdapter(_ agency: String) {
        adapters.removeValue(forKey: agency)?.shutdown()
    }

    deinit {
        for adapter in adapters.values { adapter.shutdown() }
        broker?.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    static func request(to: String = "rsud-embung-fatimah", service: Service = .medicalCare, name: String = "Siti Contoh") -> ReferralRequest {
        ReferralRequest(
            caseRef: "KR-BTM-2026-0041", to: to, service: service, priority: .urgent,
            reason: .medicalExamination,
            body: ReferralBody(
                subject: Subject(ageBand: "18-24", gender: "female", nationality: "ID", languages: ["id", "jv"], child: false, needs: ["interpreter"], name: name, contact: "+62 812 0000 0000"),
                consent: Consent(status: .given, scope: [.health, .legalAid, .shelter, .witnessProtection, .socialServices], date: Date(), recordedBy: "bripka-0412"),
                notes: "rescued in a raid; no documents"))
    }
}

/// Waits until `condition` holds, checking it each time `interval` passes, up to `timeout`;
/// fails the test if it never does. Used to wait for something another thread makes happen.
func waitFor(_ what: String, timeout: TimeInterval = 15, interval: TimeInterval = 0.01, _ condition: () throws -> Bool) async throws {
    let deadline = Date() + timeout
    while Date() < deadline {
        if try condition() { return }
        try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
    }
    Issue.record("timed out after \(timeout)s waiting for: \(what)")
    throw CancellationError()
}

/// A GET of the broker's status API, with the tests' coordinator token.
func statusGET(_ url: String) async throws -> (Data, URLResponse) {
    var request = URLRequest(url: URL(string: url)!, timeoutInterval: 30)
    request.setValue("Bearer \(Network.statusToken)", forHTTPHeaderField: "Authorization")
    return try await URLSession.shared.data(for: request)
}

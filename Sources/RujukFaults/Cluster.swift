import Foundation
import GRDB
import RujukAdapter
import RujukCore

/// A whole Rujuk network as real processes on loopback: one broker and one adapter per agency
/// taking part, each with its own configuration, keys made for the run (CurveZMQ and sealing,
/// as deployed), and the recipients' webhooks pointed at the `AgencySystem`.
final class Cluster: @unchecked Sendable {
    let directory: URL
    let binary: URL
    let broker: ChildProcess
    let brokerPort: Int
    let brokerHTTPPort: Int
    let brokerDataDirectory: URL
    private(set) var adapters: [String: ChildProcess] = [:]
    private(set) var apiPorts: [String: Int] = [:]
    /// Where each adapter's API listens: 127.0.0.1, or the namespace's address for the one
    /// adapter in a network namespace.
    private(set) var apiHosts: [String: String] = [:]
    let agencySystem: AgencySystem
    private let keyDirectory: URL
    private let agenciesFile: URL
    private let brokerPublicKey: String
    private let heartbeatMs: Int

    /// - Parameters:
    ///   - brokerData: where the broker's store lives (a small filesystem for the disk-full
    ///     scenario); by default inside `directory`.
    ///   - adapterBrokerEndpoint: lets a scenario put a proxy between adapters and broker.
    ///   - isolated: runs that namespace's agency inside it, and the broker on the host's end of
    ///     its veth pair, so the link can be cut like a real one.
    init(binary: URL, configDirectory: URL, directory: URL, agencies: [String], recipients: Set<String>,
         agencySystem: AgencySystem, brokerData: URL? = nil, heartbeatMs: Int = 300,
         adapterBrokerEndpoint: ((Int) throws -> String)? = nil, isolated: NetworkNamespace? = nil) throws {
        self.directory = directory
        self.binary = binary
        self.agencySystem = agencySystem
        self.heartbeatMs = heartbeatMs
        let files = FileManager.default
        try files.createDirectory(at: directory, withIntermediateDirectories: true)
        keyDirectory = directory.appendingPathComponent("keys")
        try files.createDirectory(at: keyDirectory, withIntermediateDirectories: true)

        // Keys for every agency of the network (as `rujuk keygen` makes them), and an
        // agencies.toml that lists their public halves.
        let registry = try AgencyRegistry.load(configDirectory.appendingPathComponent("agencies.toml"))
        let keys = try EphemeralKeys(for: registry)
        try keys.broker.write(to: keyDirectory.appendingPathComponent("broker.key"))
        for agency in agencies { try keys.agencies[agency]!.write(to: keyDirectory.appendingPathComponent("\(agency).key")) }
        brokerPublicKey = keys.broker.curvePublic
        var lines: [String] = []
        for line in try String(contentsOf: configDirectory.appendingPathComponent("agencies.toml"), encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false) {
            lines.append(String(line))
            if line.hasPrefix("id = \""), let key = keys.agencies[String(line.dropFirst(6).dropLast())] {
                lines.append("curve_key = \"\(key.curvePublic)\"")
                lines.append("seal_key = \"\(key.sealPublic!)\"")
            }
        }
        agenciesFile = directory.appendingPathComponent("agencies.toml")
        try lines.joined(separator: "\n").write(to: agenciesFile, atomically: true, encoding: .utf8)

        let brokerHost = isolated?.hostAddress ?? "127.0.0.1"
        brokerPort = try Loopback.freePort()
        brokerHTTPPort = try Loopback.freePort()
        brokerDataDirectory = brokerData ?? directory.appendingPathComponent("broker")
        let brokerConfig = directory.appendingPathComponent("broker.toml")
        try """
            agencies = "\(agenciesFile.path)"
            transport = "curve"
            [broker]
            key_file = "\(keyDirectory.appendingPathComponent("broker.key").path)"
            router = "tcp://\(brokerHost):\(brokerPort)"
            monitor = "tcp://127.0.0.1:\(try Loopback.freePort())"
            http = "127.0.0.1:\(brokerHTTPPort)"
            data_dir = "\(brokerDataDirectory.path)"
            heartbeat_ms = \(heartbeatMs)
            max_credit = 4096
            """.write(to: brokerConfig, atomically: true, encoding: .utf8)
        broker = ChildProcess(name: "broker", binary: binary, arguments: ["broker", "--config", brokerConfig.path],
                              log: directory.appendingPathComponent("broker.log"))

        for agency in agencies {
            let port = try Loopback.freePort()
            apiPorts[agency] = port
            let inNamespace = isolated?.agency == agency
            apiHosts[agency] = inNamespace ? isolated!.namespaceAddress : "127.0.0.1"
            let endpoint = try adapterBrokerEndpoint?(brokerPort) ?? "tcp://\(brokerHost):\(brokerPort)"
            let webhook = recipients.contains(agency) ? """
                [adapter.webhook]
                url = "\(agencySystem.url(for: agency))"
                max_attempts = 1000
                timeout = "5s"
                """ : ""
            let config = directory.appendingPathComponent("adapter-\(agency).toml")
            try """
                agencies = "\(agenciesFile.path)"
                transport = "curve"
                [adapter]
                broker = "\(endpoint)"
                broker_key = "\(brokerPublicKey)"
                broker_sign_key = "\(keys.broker.signPublic!)"
                key_file = "\(keyDirectory.path)/{agency}.key"
                api = "\(apiHosts[agency]!):\(port)"
                data_dir = "\(directory.appendingPathComponent("adapters").path)"
                token = "faults"
                heartbeat_ms = \(heartbeatMs)
                # As a busy agency would set it: a backlog drains faster, and more is in flight
                # (so sent again) when something breaks.
                credit = 4096
                \(inNamespace ? "allow_api_without_tls_off_loopback = true  # on the namespace's own veth link" : "")
                \(webhook)
                """.write(to: config, atomically: true, encoding: .utf8)
            let arguments = ["adapter", "--agency", agency, "--config", config.path]
            // `ip netns exec` execs the adapter in place: its pid is the adapter's, for signals.
            adapters[agency] = ChildProcess(name: agency, binary: inNamespace ? NetworkNamespace.ip : binary,
                                            arguments: inNamespace ? ["netns", "exec", isolated!.name, binary.path] + arguments : arguments,
                                            log: directory.appendingPathComponent("adapter-\(agency).log"))
        }
    }

    func adapter(_ agency: String) -> ChildProcess { adapters[agency]! }

    func ledgerPath(_ agency: String) -> String {
        directory.appendingPathComponent("adapters/\(agency)/ledger.sqlite").path
    }

    var brokerStorePath: String { brokerDataDirectory.appendingPathComponent("broker.sqlite").path }

    /// Starts the broker and waits until its status API answers (it binds the ROUTER first).
    func startBroker(crashAt: String? = nil, timeout: TimeInterval = 60) async throws {
        try broker.start(crashAt: crashAt)
        try await waitFor("the broker's status API", timeout: timeout) {
            guard broker.isRunning else { throw FaultError("the broker exited at start: \(broker.logTail())") }
            return await httpGet(port: brokerHTTPPort, path: "/health") != nil
        }
    }

    /// Starts an adapter and waits until its API answers.
    func startAdapter(_ agency: String, crashAt: String? = nil, timeout: TimeInterval = 60) async throws {
        let child = adapter(agency)
        try child.start(crashAt: crashAt)
        try await waitFor("\(agency)'s API", timeout: timeout) {
            guard child.isRunning else { throw FaultError("\(agency) exited at start: \(child.logTail())") }
            return await httpGet(host: apiHosts[agency]!, port: apiPorts[agency]!, path: "/health") != nil
        }
    }

    /// Waits until an adapter says it is connected to the broker (its /health `broker` field).
    func waitConnected(_ agency: String, timeout: TimeInterval = 60) async throws {
        try await waitFor("\(agency) connected to the broker", timeout: timeout) {
            guard let body = await httpGet(host: apiHosts[agency]!, port: apiPorts[agency]!, path: "/health") else { return false }
            return String(decoding: body, as: UTF8.self).contains("\"ready\"")
        }
    }

    /// Set by `stopAll`: a load on this cluster stops submitting (a scenario that fails must
    /// not leave its load running into the next one).
    let stopped = Locked(false)

    func stopAll() {
        stopped.withLock { $0 = true }
        for child in adapters.values { child.signal(SIGKILL) }
        broker.signal(SIGKILL)
    }

    /// Reads an adapter's ledger read-only while the adapter may be running.
    func readLedger<T>(_ agency: String, _ read: (Database) throws -> T) throws -> T {
        try readDatabase(ledgerPath(agency), read)
    }
}

/// Opens a live SQLite file read-only, waiting out the writer's checkpoints.
func readDatabase<T>(_ path: String, _ read: (Database) throws -> T) throws -> T {
    var configuration = Configuration()
    configuration.readonly = true
    configuration.busyMode = .timeout(10)
    let queue = try DatabaseQueue(path: path, configuration: configuration)
    return try queue.read(read)
}

struct FaultError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Waits until `condition` holds, looking every 20 ms, for at most `timeout`.
func waitFor(_ what: String, timeout: TimeInterval, _ condition: () async throws -> Bool) async throws {
    let deadline = Date() + timeout
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw FaultError("timed out after \(Int(timeout)) s waiting for \(what)")
}

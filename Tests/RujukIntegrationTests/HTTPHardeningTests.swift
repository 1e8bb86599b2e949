import Foundation
import Logging
import RujukAdapter
import RujukBroker
import RujukCore
import Testing
import ZeroMQ

/// A plain TCP client for HTTP on 127.0.0.1, with a timeout on every call: the attacks below
/// send what no HTTP library would (half a request head, any `Host`).
struct RawHTTP {
    let fd: Int32

    /// Connects within `timeout`, or throws.
    init(port: Int, timeout: TimeInterval) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RujukError(.internal, "socket: \(String(cString: strerror(errno)))") }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = Loopback.address(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw RujukError(.internal, "connect: \(reason)")
        }
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard Glibc.send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else {
            throw RujukError(.internal, "send: \(String(cString: strerror(errno)))")
        }
    }

    /// Everything until the server closes (the requests below ask it to), bounded by the
    /// receive timeout of each read.
    func readToEnd() throws -> String {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 { break }
            guard count > 0 else { throw RujukError(.internal, "recv: \(String(cString: strerror(errno)))") }
            data += buffer[0..<count]
        }
        return String(decoding: data, as: UTF8.self)
    }

    func close() { _ = Glibc.close(fd) }

    /// One request with `Connection: close`; the status code and the body.
    static func request(port: Int, host: String?, path: String = "/health", token: String? = nil,
                        timeout: TimeInterval = 5) throws -> (status: Int, body: String) {
        let client = try RawHTTP(port: port, timeout: timeout)
        defer { client.close() }
        var head = "GET \(path) HTTP/1.1\r\n"
        if let host { head += "Host: \(host)\r\n" }
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        try client.send(head + "Connection: close\r\n\r\n")
        let answer = try client.readToEnd()
        let status = answer.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
        let body = answer.range(of: "\r\n\r\n").map { String(answer[$0.upperBound...]) } ?? ""
        return (status, body)
    }
}

/// Half a request head on each of many connections: the server waits for the rest (slowloris).
final class SlowClients {
    private(set) var open: [(fd: Int32, sentAt: Date)] = []

    /// Opens up to `count` connections, each sending a head that never ends, until `deadline`.
    init(port: Int, count: Int, deadline: Date) {
        for _ in 0..<count where Date() < deadline {
            guard let client = try? RawHTTP(port: port, timeout: 1) else { continue }
            guard (try? client.send("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")) != nil else {
                client.close()
                continue
            }
            open.append((client.fd, Date()))
        }
    }

    /// How long after its half head the server closed each of `clients`, waiting until
    /// `deadline`; nil for one still open then.
    func closedAfter(_ clients: ArraySlice<(fd: Int32, sentAt: Date)>, deadline: Date) -> [TimeInterval?] {
        var result = [TimeInterval?](repeating: nil, count: clients.count)
        var pending = Array(clients.indices)
        var buffer = [UInt8](repeating: 0, count: 512)
        while !pending.isEmpty, Date() < deadline {
            var polls = pending.map { pollfd(fd: clients[$0].fd, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&polls, nfds_t(polls.count), 100)
            guard ready > 0 else { continue }
            var still: [Int] = []
            for (slot, index) in pending.enumerated() {
                guard polls[slot].revents != 0, recv(clients[index].fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) <= 0 else {
                    still.append(index)
                    continue
                }
                result[index - clients.startIndex] = Date().timeIntervalSince(clients[index].sentAt)
            }
            pending = still
        }
        return result
    }

    deinit { for client in open { close(client.fd) } }
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct HTTPHardeningTests {
    static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }()

    /// The descriptors of a process, from /proc.
    static func openDescriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// A child `rujuk adapter` for polda-kepri whose [adapter] table ends with `extra`, started
    /// by `/bin/sh -c "<shell>; exec rujuk adapter …"` (`ulimit`, `umask`).
    static func childAdapter(_ network: Network, apiPort: Int, shell: String, extra: String,
                             environment: [String: String] = [:]) throws -> (process: Process, log: URL) {
        let config = try childAdapterConfig(network, name: "hardening-\(UUID().uuidString.prefix(8)).toml", broker: network.broker.routerEndpoint,
                                            apiPort: apiPort, token: nil, extra: extra)
        let log = network.directory.appendingPathComponent("adapter-\(UUID().uuidString.prefix(8)).log")
        try #require(FileManager.default.createFile(atPath: log.path, contents: nil))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "\(shell); exec \"$0\" \"$@\"", BrokerProcess.binary.path,
                             "adapter", "--agency", "polda-kepri", "--config", config.path]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return (process, log)
    }

    /// A second broker in this process with the given HTTP listener settings, its server
    /// running; in a context of its own, since a context has one ZAP handler.
    static func runningBroker(_ network: Network, _ settings: HTTPListenerSettings) async throws -> (Broker, Task<Void, any Error>) {
        let configuration = BrokerConfiguration(
            router: "tcp://127.0.0.1:*", monitor: "tcp://127.0.0.1:*", http: HostPort(host: "127.0.0.1", port: 0),
            dataDirectory: network.directory.appendingPathComponent("hardened-broker"), keys: Network.keys.broker,
            apiTokens: ["test": "test-token"], httpListener: settings)
        let broker = try Broker(configuration: configuration, registry: Network.registry, context: try Context(), logger: logger)
        let task = Task { try await broker.run() }
        try await waitFor("the broker's HTTP listener is up") { broker.boundHTTPPort != nil }
        return (broker, task)
    }

    /// An adapter in this process with the given API listener settings and token file, its API running.
    static func runningAdapter(_ network: Network, _ settings: HTTPListenerSettings, token: String? = "test-token") async throws -> (Adapter, Task<Void, any Error>) {
        let configuration = AdapterConfiguration(
            agency: "polda-kepri", broker: network.broker.routerEndpoint, api: HostPort(host: "127.0.0.1", port: 0),
            dataDirectory: network.directory.appendingPathComponent("adapters"), token: token,
            keys: Network.keys.agencies["polda-kepri"], brokerKey: Network.keys.broker.curvePublic, apiListener: settings)
        let adapter = try Adapter(configuration: configuration, registry: Network.registry, sla: Network.sla, context: network.context, logger: logger)
        let task = Task { try await adapter.run() }
        try await waitFor("the adapter's API is up") { adapter.boundHTTPPort != nil }
        return (adapter, task)
    }

    // MARK: - Slowloris

    @Test func halfSentRequestsNeitherExhaustTheAdapterNorOutstayTheHeaderTimeout() async throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        try #require(limit.rlim_cur >= 2_300, "the test needs 2,300 descriptors of its own")

        let network = try Network()
        let apiPort = try Loopback.freePort()
        let (child, log) = try Self.childAdapter(network, apiPort: apiPort, shell: "ulimit -n 1024", extra: """
            token = "t"
            header_timeout = "3s"
            """)
        defer {
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
        }
        try await waitFor("the child's API answers", timeout: 30) {
            (try? RawHTTP.request(port: apiPort, host: "127.0.0.1:\(apiPort)", timeout: 1).status) == 200
        }

        // 2,000 connections, each stuck in its request head, against 1,024 descriptors.
        let attack = SlowClients(port: apiPort, count: 2_000, deadline: Date() + 20)
        let descriptors = Self.openDescriptors(child.processIdentifier)
        let started = Date()
        let answer = try? RawHTTP.request(port: apiPort, host: "127.0.0.1:\(apiPort)", timeout: 2)
        let took = Date().timeIntervalSince(started)
        #expect(answer?.status == 200, "a normal request is answered during the attack (\(attack.open.count) half-sent)")
        #expect(took < 2, "and at once: \(took) s")
        #expect(descriptors < 800, "the adapter holds at most max_connections (512) of them: \(descriptors) descriptors open")

        // The newest of them were not pushed out by later ones: the header timeout closes them.
        let newest = attack.open.suffix(50)
        let closed = attack.closedAfter(newest, deadline: Date() + 10)
        #expect(closed.allSatisfy { $0 != nil }, "every half-sent request is closed (\(closed.filter { $0 == nil }.count) still open)")
        let seconds = closed.compactMap { $0 }
        #expect(seconds.allSatisfy { $0 >= 2.5 && $0 < 7 }, "closed by the 3 s header timeout: \(seconds.min() ?? 0)–\(seconds.max() ?? 0) s")
        #expect(child.isRunning, "\((try? String(contentsOf: log, encoding: .utf8))?.suffix(500) ?? "")")
    }

    @Test func theBrokersListenerClosesHalfSentRequestsAndCapsItsConnections() async throws {
        let network = try Network()
        let (broker, task) = try await Self.runningBroker(network, HTTPListenerSettings(headerTimeout: 1, maxConnections: 8))
        defer { task.cancel() }
        let port = try #require(broker.boundHTTPPort)
        let attack = SlowClients(port: port, count: 20, deadline: Date() + 10)
        #expect(attack.open.count == 20)
        // Past the cap of 8, each new connection pushed out one that had not finished its head.
        let early = attack.closedAfter(attack.open[...], deadline: Date() + 0.5)
        #expect(early.filter { $0 != nil }.count == 12, "\(early)")
        #expect(try RawHTTP.request(port: port, host: "127.0.0.1:\(port)", path: "/health", timeout: 2).status == 200)
        let held = attack.open.indices.filter { early[$0] == nil }.map { attack.open[$0] }
        let late = attack.closedAfter(held[...], deadline: Date() + 5)
        #expect(late.allSatisfy { $0 != nil }, "\(late)")
        #expect(late.filter { ($0 ?? 0) >= 0.8 }.count >= 7, "closed by the 1 s header timeout: \(late)")
    }

    // MARK: - DNS rebinding

    @Test func bothListenersAnswerOnlyTheirOwnHostNames() async throws {
        let network = try Network()
        let settings = HTTPListenerSettings(allowedHosts: ["rujuk.agency.example", "proxy.example:8443"])
        let (broker, brokerTask) = try await Self.runningBroker(network, settings)
        let (adapter, adapterTask) = try await Self.runningAdapter(network, settings)
        defer {
            brokerTask.cancel()
            adapterTask.cancel()
        }
        for (what, port, path) in [("broker", broker.boundHTTPPort!, "/api/handoffs"), ("adapter", adapter.boundHTTPPort!, "/api/inbox")] {
            for host in ["127.0.0.1:\(port)", "localhost:\(port)", "LOCALHOST", "[::1]:\(port)", "127.0.0.1", "rujuk.agency.example",
                         "rujuk.agency.example:\(port)", "proxy.example:8443"] {
                let answer = try RawHTTP.request(port: port, host: host, path: path, token: "test-token")
                #expect(answer.status == 200, "\(what), Host: \(host)")
            }
            for host in ["evil.example", "evil.example:\(port)", "127.0.0.1:\(port + 1)", "proxy.example", "rujuk.agency.example.evil.example",
                         "127.0.0.1:\(port)@evil.example", ""] {
                let answer = try RawHTTP.request(port: port, host: host, path: path, token: "test-token")
                #expect(answer.status == 421, "\(what), Host: \(host)")
                #expect(answer.body.contains("\"misdirected_host\""), "\(what): \(answer.body)")
            }
            // Without any Host (HTTP/1.0 style) too, and before the route or the token is looked at.
            #expect(try RawHTTP.request(port: port, host: nil, path: path, token: "test-token").status == 421)
            #expect(try RawHTTP.request(port: port, host: "evil.example", path: "/no/such/page").status == 421)
        }
    }

    // MARK: - The API token file

    @Test func aTokenFileOthersCanReadIsRefused() async throws {
        let network = try Network()
        let directory = network.directory.appendingPathComponent("adapters/polda-kepri")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = Adapter.tokenFile(in: directory)
        try Data("readable-by-all".utf8).write(to: file)
        chmod(file.path, 0o644)
        let error = try #require(throws: ConfigError.self) {
            _ = try Adapter(configuration: AdapterConfiguration(
                agency: "polda-kepri", broker: network.broker.routerEndpoint, dataDirectory: directory.deletingLastPathComponent(),
                keys: Network.keys.agencies["polda-kepri"], brokerKey: Network.keys.broker.curvePublic),
                registry: Network.registry, sla: Network.sla, context: network.context, logger: Self.logger)
        }
        #expect(error.message.contains("readable by others (mode 644)") && error.file == file.path, "\(error)")
        chmod(file.path, 0o640)
        #expect(throws: ConfigError.self) { try Adapter.readToken(in: directory) }
        chmod(file.path, 0o600)
        #expect(try Adapter.readToken(in: directory) == "readable-by-all")
    }

    @Test func aNewTokenFileIsOnlyEverReadableByItsOwner() async throws {
        let network = try Network()
        let directory = network.directory.appendingPathComponent("child-adapters/polda-kepri")
        // Killed right after the token's bytes are written, before the file is renamed into
        // place, under a umask that lets everyone read what is created without an explicit mode.
        let (crashed, _) = try Self.childAdapter(network, apiPort: try Loopback.freePort(), shell: "umask 000", extra: "",
                                                 environment: [FaultPoint.environmentKey: FaultPoint.tokenFileWritten.rawValue])
        try await waitFor("the adapter dies at the fault point", timeout: 30) { !crashed.isRunning }
        #expect(crashed.terminationReason == .uncaughtSignal && crashed.terminationStatus == SIGKILL)
        let written = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix(".api.token.") }
        #expect(written.count == 1, "the token is written to a temporary file first: \(written)")
        for name in written {
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(name).path)[.posixPermissions] as? NSNumber)
            #expect(mode.intValue == 0o600, "created mode \(String(mode.intValue, radix: 8))")
        }
        #expect(!FileManager.default.fileExists(atPath: Adapter.tokenFile(in: directory).path), "no half-written token in place")

        // A normal start puts it in place, mode 0600, and the adapter answers to it.
        let apiPort = try Loopback.freePort()
        let (child, _) = try Self.childAdapter(network, apiPort: apiPort, shell: "umask 000", extra: "")
        defer {
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
        }
        try await waitFor("the child's API answers", timeout: 30) {
            (try? RawHTTP.request(port: apiPort, host: "127.0.0.1", timeout: 1).status) == 200
        }
        let file = Adapter.tokenFile(in: directory)
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? NSNumber)
        #expect(mode.intValue == 0o600, "mode \(String(mode.intValue, radix: 8))")
        let token = try #require(try Adapter.readToken(in: directory))
        #expect(token.count == 64)
        #expect(try RawHTTP.request(port: apiPort, host: "127.0.0.1", path: "/api/inbox", token: token).status == 200)
    }

    @Test func theCommandLineHelpSteersTheTokenAwayFromArguments() async throws {
        let help = Process()
        help.executableURL = BrokerProcess.binary
        help.arguments = ["inbox", "--help"]
        let out = Pipe()
        help.standardOutput = out
        try help.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        help.waitUntilExit()
        #expect(text.contains("Discouraged") && text.contains("$RUJUK_TOKEN") && text.contains("`ps`"), "\(text)")
    }

    // MARK: - Unsafe settings

    @Test func unsafeExposureIsRefusedBeforeAnythingListens() async throws {
        let network = try Network()
        let plaintext = BrokerConfiguration(router: "tcp://0.0.0.0:*", monitor: "tcp://127.0.0.1:*", http: HostPort(host: "127.0.0.1", port: 0),
                                            dataDirectory: network.directory.appendingPathComponent("exposed"), transport: .plaintext)
        #expect(throws: ConfigError.self) { _ = try Broker(configuration: plaintext, registry: Network.registry, context: network.context, logger: Self.logger) }
        #expect(!FileManager.default.fileExists(atPath: plaintext.dataDirectory.path), "refused before the store is opened")

        let exposedAPI = AdapterConfiguration(
            agency: "lpsk", broker: network.broker.routerEndpoint, api: HostPort(host: "0.0.0.0", port: 0),
            dataDirectory: network.directory.appendingPathComponent("exposed-adapters"), token: "t",
            keys: Network.keys.agencies["lpsk"], brokerKey: Network.keys.broker.curvePublic)
        let error = try #require(throws: ConfigError.self) {
            _ = try Adapter(configuration: exposedAPI, registry: Network.registry, sla: Network.sla, context: network.context, logger: Self.logger)
        }
        #expect(error.message.contains("allow_api_without_tls_off_loopback"))
        #expect(!FileManager.default.fileExists(atPath: exposedAPI.dataDirectory.path), "refused before the ledger is opened")
    }
}

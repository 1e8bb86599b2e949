import CZeroMQ
import Foundation
import RujukAdapter
import RujukBroker
import RujukCore
import Testing
import ZeroMQ

/// A raw TCP connection from `source` (a loopback address) to `port` on 127.0.0.1 that sends a
/// ZMTP 3.0 greeting offering CURVE and then stalls, as a pre-authentication attacker does.
/// Returns the descriptor, or nil when the connection is not made within a second.
func stalledZMTPConnection(from source: String, to port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var timeout = timeval(tv_sec: 1, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    func address(_ host: String, _ port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        return address
    }
    var local = address(source, 0), remote = address("127.0.0.1", port)
    let size = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) } }
    let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, size) } }
    guard bound == 0, connected == 0 else { close(fd); return nil }
    // Signature, version 3.0, mechanism "CURVE" padded to 20 bytes, as-server 0, filler.
    var greeting: [UInt8] = [0xFF] + [UInt8](repeating: 0, count: 8) + [0x7F, 3, 0]
    greeting += Array("CURVE".utf8) + [UInt8](repeating: 0, count: 15) + [0] + [UInt8](repeating: 0, count: 31)
    _ = greeting.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    return fd
}

/// The resident set of a process, in bytes, from /proc.
func residentBytes(of pid: Int32 = getpid()) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
    else { return 0 }
    return kilobytes * 1024
}

/// Attacks on the broker's resources: descriptors before authentication, and one agency's
/// flood of messages after it.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ExhaustionTests {
    @Test func stalledHandshakesCannotTakeEveryDescriptor() async throws {
        let network = try Network()
        network.broker.shutdown()
        let endpoint = try BrokerProcess.freeEndpoint(network.context)
        let routerPort = Int(endpoint.split(separator: ":").last!)!
        let httpPort = try Loopback.freePort()
        let config = try network.childBrokerConfig(endpoint: endpoint, http: "127.0.0.1:\(httpPort)")
        // The usual open-file limit, as a service without LimitNOFILE gets.
        let broker = Process()
        broker.executableURL = URL(fileURLWithPath: "/bin/sh")
        broker.arguments = ["-c", "ulimit -n 1024; exec \"$0\" broker --config \"$1\"", BrokerProcess.binary.path, config.path]
        let logFile = network.directory.appendingPathComponent("broker-ulimit.log")
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let output = try FileHandle(forWritingTo: logFile)
        broker.standardOutput = output
        broker.standardError = output
        try broker.run()
        defer { if broker.isRunning { kill(broker.processIdentifier, SIGKILL); broker.waitUntilExit() } }
        try await waitFor("the broker's /health answers", timeout: 30, interval: 0.05) {
            (try? Data(contentsOf: URL(string: "http://127.0.0.1:\(httpPort)/health")!)) != nil
        }

        var stalled: [Int32] = []
        defer { for fd in stalled { close(fd) } }
        for index in 0..<1100 {
            // Two attacking addresses; the real adapters connect from 127.0.0.1.
            if let fd = stalledZMTPConnection(from: index % 2 == 0 ? "127.0.0.2" : "127.0.0.3", to: routerPort) { stalled.append(fd) }
        }
        #expect(stalled.count > 1000, "the attack's connections were made (\(stalled.count))")

        let started = Date()
        let health = await fetchJSON(port: httpPort, path: "/health", timeout: 1)
        #expect(health?["status"] as? String == "ok", "/health answered within a second")
        #expect(Date().timeIntervalSince(started) < 1.5)

        let police = try network.adapter("polda-kepri", heartbeatMs: 300, endpoint: endpoint)
        let hospital = try network.adapter("rsud-embung-fatimah", heartbeatMs: 300, endpoint: endpoint)
        let sent = try police.refer(Network.request())
        try await waitFor("a referral goes through while the attack holds its connections", timeout: 20) {
            try hospital.ledger.view(sent.id) != nil && police.ledger.view(sent.id)?.status == .received
        }
        let counts = await fetchJSON(port: httpPort, path: "/health", timeout: 5)?["security_events"] as? [String: Int]
        #expect((counts?["connection_limit"] ?? 0) > 0, "the cut connections are counted: \(String(describing: counts))")
        _ = try await terminateGracefully(broker, "the broker")
    }

    @Test func oneAgencysFloodDoesNotStarveTheOthers() async throws {
        let network = try Network()
        network.broker.shutdown()
        // Low enough that this test's flood goes over it on a slow machine too.
        try network.startBroker(limits: BrokerLimits(sessionRate: 2000))
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")

        /// Median seconds from refer to the recipient's ledger, over `count` referrals in turn.
        func deliveryLatency(_ count: Int) async throws -> Double {
            var latencies: [Double] = []
            for _ in 0..<count {
                let started = Date()
                let sent = try police.refer(Network.request())
                try await waitFor("delivered", timeout: 60, interval: 0.002) { try hospital.ledger.view(sent.id) != nil }
                latencies.append(Date().timeIntervalSince(started))
            }
            return latencies.sorted()[count / 2]
        }
        _ = try await deliveryLatency(5)
        let unloaded = try await deliveryLatency(20)

        // The flooder is another process's socket: its own context, so its I/O thread is not
        // the one the broker and the adapters share here.
        let flooderContext = try Context()
        let socket = try Socket(flooderContext, .dealer)
        let own = Network.keys.agencies["lbh-batam"]!
        try socket.makeCurveClient(serverKey: Network.keys.broker.curvePublic, publicKey: own.curvePublic, secretKey: own.curveSecret)
        // Blocking sends: the flooder goes as fast as the broker reads, without spinning.
        try socket.set(ZMQ_SNDTIMEO, Int32(100))
        try socket.connect(network.broker.routerEndpoint)
        let stop = Locked(false)
        let rateLimited = Locked(0)
        let residentBefore = residentBytes()
        let flood = Thread {
            let receipt = RRPCodec.encode(.receipt(Receipt(ids: (0..<50).map { _ in MessageID.make() })))
            let hello = RRPCodec.encode(.hello(Hello(agency: "lbh-batam", credit: 1000, heartbeatMs: 60_000)))
            var sent = 0
            while !stop.current {
                _ = try? socket.send(sent % 2 == 0 ? receipt : hello)
                sent += 1
                while let reply = try? socket.receive(dontWait: true) {
                    if case .error(let error) = try? RRPCodec.decode(reply.frames), error.code == .rateLimited {
                        rateLimited.withLock { $0 += 1 }
                    }
                }
            }
        }
        flood.start()
        let loaded: Double
        do {
            try await waitFor("the flood is going") { rateLimited.current > 0 }
            loaded = try await deliveryLatency(20)
        } catch {
            stop.withLock { $0 = true }
            throw error
        }
        let residentDuring = residentBytes()
        stop.withLock { $0 = true }
        try await waitFor("the flood stops") { flood.isFinished }
        socket.close()

        #expect(rateLimited.current > 0, "the flooder is told rate_limited")
        #expect(loaded <= 2 * unloaded + 0.1, "delivery under the flood \(loaded) s against \(unloaded) s unloaded")
        #expect(residentDuring - residentBefore < 200 << 20, "memory grew by \((residentDuring - residentBefore) >> 20) MiB")
        #expect(network.broker.router.securityEvents.snapshot["rate_limited"] ?? 0 > 0)
    }
}

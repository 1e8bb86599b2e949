import Foundation
import Logging
import RujukAdapter
import RujukBroker
import RujukCore
import ZeroMQ

extension BenchCommand {
    /// The sending side as an agency system sees it: `requests` referrals POSTed to a sender's
    /// adapter (KJRI Johor Bahru, to UPTD PPA Batam) over its HTTP API, from 1 connection and then from `connections`
    /// at once, each waiting for its 201. Each referral is validated, sealed and committed to
    /// the adapter's ledger (synchronous=full) before its answer; the adapter's link sends them
    /// on to the broker meanwhile. Prints requests/s, each request's time, and how many
    /// requests shared each ledger commit.
    func apiBenchmark(directory: URL, requests: Int, connections: Int, broker: Broker, keys: EphemeralKeys, registry: AgencyRegistry, durability: Durability, transport: Transport) async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        let sender = try Adapter(configuration: AdapterConfiguration(agency: "kjri-johor-bahru", broker: broker.routerEndpoint, api: HostPort(host: "127.0.0.1", port: 0), dataDirectory: directory, token: "bench",
                                                                     durability: durability, transport: transport, keys: keys.agencies["kjri-johor-bahru"], brokerKey: keys.broker.curvePublic),
                                 registry: registry, sla: .standard, context: try Context(), logger: logger)
        let serving = Task { try await sender.run() }
        defer { serving.cancel() }
        let deadline = Date() + 30
        while sender.boundHTTPPort == nil {
            guard Date() < deadline else { throw RujukError(.internal, "the sender's API did not start") }
            try await Task.sleep(for: .milliseconds(5))
        }
        let port = sender.boundHTTPPort!
        // To an agency that is not connected, so what runs is the API and the sender's side.
        let body = JSONCoding.encode(ReferralRequest(
            caseRef: "BENCH-API", to: "uptd-ppa-batam", service: .shelter, priority: .urgent, reason: .safeShelter,
            body: ReferralBody(
                subject: Subject(ageBand: "18-24", gender: "female", nationality: "ID", languages: ["id"], child: false, needs: [], name: "Bench Subject", contact: "+62 812 0000 0000"),
                consent: Consent(status: .given, scope: [.shelter], date: Date(), recordedBy: "bench"),
                notes: nil)))
        _ = try postAll(port: port, body: body, requests: 100, connections: 4)  // warm-up
        for concurrent in [1, connections] where concurrent >= 1 {
            let before = sender.ledger.requests.totals
            let cpuBefore = ProcessCPU.now()
            let result = try postAll(port: port, body: body, requests: requests, connections: concurrent)
            let cpu = ProcessCPU.now() - cpuBefore
            let after = sender.ledger.requests.totals
            let commits = String(format: "; %.1f requests per ledger commit", Double(after.callers - before.callers) / Double(max(1, after.groups - before.groups)))
            print(String(format: "adapter API: %d POST /api/referrals from %d connection%@ in %.2f s = %.0f requests/s; each request p50 %.2f ms, p99 %.2f ms; ",
                         requests, concurrent, concurrent == 1 ? "" : "s", result.elapsed, Double(requests) / result.elapsed, result.p(0.5), result.p(0.99)) + cpu.perItem(requests, "request") + commits)
        }
    }

    /// `requests` POSTs spread over `connections` threads, each with its own keep-alive
    /// connection; every answer must be 201.
    private func postAll(port: Int, body: [UInt8], requests: Int, connections: Int) throws -> BenchClient.Result {
        let next = Locked(0)
        let times = Locked<[Double]>([])
        let failure = Locked<Error?>(nil)
        let start = DispatchTime.now().uptimeNanoseconds
        // Threads of its own, not `concurrentPerform`, which runs no more at once than there are cores.
        let finished = DispatchGroup()
        for _ in 0..<connections {
            finished.enter()
            Thread {
            defer { finished.leave() }
            do {
                let connection = try BenchHTTPConnection(port: port)
                defer { connection.close() }
                var mine: [Double] = []
                while next.withLock({ value -> Bool in value += 1; return value <= requests }) {
                    let sent = DispatchTime.now().uptimeNanoseconds
                    let (status, answer) = try connection.post("/api/referrals", token: "bench", body: body)
                    guard status == 201 else { throw RujukError(.internal, "HTTP \(status): \(String(decoding: answer.prefix(200), as: UTF8.self))") }
                    mine.append(Double(DispatchTime.now().uptimeNanoseconds - sent) / 1e9)
                }
                times.withLock { $0 += mine }
            } catch {
                failure.withLock { $0 = $0 ?? error }
            }
            }.start()
        }
        finished.wait()
        if let error = failure.current { throw error }
        return BenchClient.Result(elapsed: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, latencies: times.current)
    }
}

/// HTTP/1.1 with keep-alive on a blocking loopback socket, for the API benchmark: a client
/// light enough that its own CPU does not crowd out the adapter's.
final class BenchHTTPConnection {
    private let descriptor: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw RujukError(.internal, "socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            Glibc.close(descriptor)
            throw RujukError(.internal, "connect to 127.0.0.1:\(port): errno \(errno)")
        }
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    func close() { Glibc.close(descriptor) }

    /// Sends one POST and reads its answer (status and body, by Content-Length).
    func post(_ path: String, token: String, body: [UInt8]) throws -> (status: Int, body: [UInt8]) {
        let request = Array("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
        var written = 0
        while written < request.count {
            let sent = request.withUnsafeBytes { send(descriptor, $0.baseAddress! + written, request.count - written, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw RujukError(.internal, "send: errno \(errno)") }
            written += sent
        }
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var headerEnd: Int?
        while true {
            if headerEnd == nil, let end = buffer.firstRange(of: separator)?.upperBound { headerEnd = end }
            if let headerEnd {
                let head = String(decoding: buffer[..<headerEnd], as: UTF8.self)
                let lines = head.split(separator: "\r\n")
                let status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
                let length = lines.lazy.compactMap { line -> Int? in
                    let parts = line.split(separator: ":", maxSplits: 1)
                    return parts.count == 2 && parts[0].lowercased() == "content-length" ? Int(parts[1].trimmingCharacters(in: .whitespaces)) : nil
                }.first ?? 0
                if buffer.count >= headerEnd + length {
                    let answer = Array(buffer[headerEnd..<headerEnd + length])
                    buffer.removeFirst(headerEnd + length)
                    return (status, answer)
                }
            }
            var chunk = [UInt8](repeating: 0, count: 16 * 1024)
            let read = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress!, $0.count, 0) }
            guard read > 0 else { throw RujukError(.internal, "the adapter closed the connection (errno \(errno))") }
            buffer += chunk[..<read]
        }
    }
}

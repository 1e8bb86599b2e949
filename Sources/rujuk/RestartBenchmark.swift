import CZeroMQ
import Foundation
import Logging
import RujukAdapter
import RujukBroker
import RujukCore
import ZeroMQ

extension BenchCommand {
    /// The broker with a large backlog: `stored` referrals committed for an agency that is
    /// offline (UPTD PPA Batam), the broker stopped and started again on that store. Measures
    /// how long until it commits a new referral, its resident memory with the backlog pending,
    /// and how fast it drains the backlog to a peer that receipts at once (no ledger behind it:
    /// the broker's side of a drain).
    func restartBenchmark(directory: URL, stored: Int, keys: EphemeralKeys, registry: AgencyRegistry, durability: Durability, transport: Transport) throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        let offline = "uptd-ppa-batam"
        func makeBroker(_ context: Context) throws -> Broker {
            try Broker(configuration: BrokerConfiguration(router: "tcp://127.0.0.1:*", monitor: "tcp://127.0.0.1:*", dataDirectory: directory, durability: durability,
                                                          maxCredit: 4096, transport: transport, keys: keys.broker),
                       registry: registry, context: context, logger: logger)
        }
        var context = try Context()
        var broker = try makeBroker(context)
        var client = try BenchClient(context: try Context(), endpoint: broker.routerEndpoint, keys: keys, registry: registry, curve: transport == .curve)
        let fillStart = DispatchTime.now().uptimeNanoseconds
        var committed = 0
        while committed < stored {
            let chunk = try (0..<min(2_000, stored - committed)).map { _ in try client.referral(to: offline, service: .shelter) }
            committed += try client.store(chunk, window: 4096)
        }
        let fill = Double(DispatchTime.now().uptimeNanoseconds - fillStart) / 1e9
        client.socket.close()
        broker.shutdown()
        print(String(format: "restart: %d referrals stored for an offline agency in %.0f s (%.0f/s, broker only)", stored, fill, Double(stored) / fill))

        // Started again on the same store: until a new referral is committed.
        let restartStart = DispatchTime.now().uptimeNanoseconds
        context = try Context()
        broker = try makeBroker(context)
        defer { broker.shutdown() }
        client = try BenchClient(context: try Context(), endpoint: broker.routerEndpoint, keys: keys, registry: registry, curve: transport == .curve)
        defer { client.socket.close() }
        _ = try client.store([try client.referral(to: offline, service: .shelter)], window: 1)
        let restart = Double(DispatchTime.now().uptimeNanoseconds - restartStart) / 1e6
        let rssAfterRestart = residentMegabytes()

        // The agency connects; a peer that receipts each batch at once drains the backlog.
        let recipient = try RawRecipient(context: try Context(), agency: offline, endpoint: broker.routerEndpoint, keys: keys, curve: transport == .curve)
        defer { recipient.socket.close() }
        let drainStart = DispatchTime.now().uptimeNanoseconds
        var peakDuringDrain = rssAfterRestart
        var received = 0
        while received < stored + 1 {
            received += try recipient.receiveAndReceipt()
            if received % 50_000 < 4096 { peakDuringDrain = max(peakDuringDrain, residentMegabytes()) }
        }
        let drain = Double(DispatchTime.now().uptimeNanoseconds - drainStart) / 1e9
        print(String(format: "restart with %d stored: a new referral committed %.0f ms after the broker was started again; resident memory of the whole bench process then %.0f MB, at most %.0f MB while the backlog drained",
                     stored, restart, rssAfterRestart, peakDuringDrain))
        print(String(format: "drain: %d deliveries to a peer that receipts at once in %.1f s (%.0f/s, broker side only)", received, drain, Double(received) / drain))
    }
}

/// Resident set size of this process (VmRSS), in MB.
func residentMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kilobytes / 1024
}

extension BenchClient {
    /// Sends the referrals with at most `window` uncommitted and waits for every COMMIT;
    /// returns how many were committed.
    func store(_ referrals: [(id: String, bytes: [UInt8])], window: Int) throws -> Int {
        var next = 0, committed = 0
        while committed < referrals.count {
            while next < referrals.count, next - committed < window {
                try socket.send([RRPCodec.header, Array("REFER".utf8), referrals[next].bytes])
                next += 1
            }
            _ = try poll([.socket(socket)], timeoutMilliseconds: 100)
            while let message = try socket.receive(dontWait: true) {
                switch try RRPCodec.decode(message.frames, maxMessageBytes: .max) {
                case .commit(let commit): committed += commit.ids.count
                case .ping: try socket.send(RRPCodec.encode(.pong))
                case .error(let error): throw CLIError("bench: the broker refused a referral: \(error.code) \(error.reason)")
                default: break
                }
            }
        }
        return committed
    }
}

/// An agency's peer with no ledger behind it: it receipts whatever is delivered at once.
final class RawRecipient {
    let socket: Socket
    let context: Context

    init(context: Context, agency: String, endpoint: String, keys: EphemeralKeys, curve: Bool) throws {
        self.context = context
        let own = keys.agencies[agency]!
        socket = try Socket(context, .dealer)
        try socket.set(ZMQ_SNDHWM, Int32(0))
        try socket.set(ZMQ_RCVHWM, Int32(0))
        if curve { try socket.makeCurveClient(serverKey: keys.broker.curvePublic, publicKey: own.curvePublic, secretKey: own.curveSecret) }
        try socket.connect(endpoint)
        try socket.send(RRPCodec.encode(.hello(Hello(agency: agency, credit: 4096, heartbeatMs: 60_000))))
    }

    /// Waits for deliveries, receipts them in one RECEIPT; returns how many referrals came.
    func receiveAndReceipt() throws -> Int {
        _ = try poll([.socket(socket)], timeoutMilliseconds: 100)
        var ids: [String] = []
        var referrals = 0
        while let message = try socket.receive(dontWait: true) {
            let decoded = try RRPCodec.decode(message.frames, maxMessageBytes: .max)
            if case .ping = decoded { try socket.send(RRPCodec.encode(.pong)) }
            guard case .deliver(let header, _) = decoded else { continue }
            ids.append(header.id)
            if header.kind == .referral { referrals += 1 }
        }
        if !ids.isEmpty { try socket.send(RRPCodec.encode(.receipt(Receipt(ids: ids)))) }
        return referrals
    }
}

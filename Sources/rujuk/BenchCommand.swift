import ArgumentParser
import CZeroMQ
import Foundation
import GRDB
import Logging
import RujukAdapter
import RujukBroker
import RujukCore
import RujukStorage
import ZeroMQ

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure referrals/s and send-to-receipt latency through a real broker and adapter.",
        discussion: """
            A broker and a recipient adapter (both synchronous=full unless --durability normal) \
            with their SQLite files in a temporary directory, and a sending client speaking RRP \
            on a DEALER socket, all over CurveZMQ with keys made for the run; the referrals are \
            sealed for the recipient beforehand, and the recipient's adapter opens each one. Latency is from the client's REFER to the broker's DELIVER of the \
            `received` event, which the broker sends only after the recipient's ledger committed \
            the referral and its RECEIPT was committed at the broker. Then a sender's adapter \
            takes referrals over its HTTP API, from one connection and from many at once, each \
            answered once committed to its ledger.
            """)

    @Option(help: "Referrals for the throughput run.") var count = 20_000
    @Option(parsing: .upToNextOption, help: "Offered rates for the latency runs (referrals/s), one run each.") var rate = [500, 1000]
    @Option(help: "Seconds of the latency run.") var seconds = 6
    @Option(help: "full or normal.") var durability: String = "full"
    @Option(help: "Throughput runs; the median is reported.") var runs = 3
    @Option(help: "Open handoffs in the ledger for the SLA sweep benchmark (0 skips it).") var sweepHandoffs = 1_000_000
    @Option(help: "`received` events a sender's ledger applies, per round, in the events benchmark (0 skips it).") var events = 20_000
    @Option(help: "Referrals in flight (sent, not yet received) in the throughput run.") var window = 2000
    @Option(help: "Referrals stored for an offline agency before the broker restart benchmark (0 skips it).") var stored = 0
    @Option(help: "Referrals POSTed to a sender adapter's API, from one connection and then from --api-connections (0 skips it).") var apiRequests = 5000
    @Option(help: "Concurrent connections for the second API run.") var apiConnections = 32
    @Flag(help: "Keep the temporary data directory (printed at the end) for inspection.") var keep = false
    @Option(help: "curve (as deployed) or plaintext (to see what CurveZMQ costs).") var transport: String = "curve"
    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let config = try options.load()
        let durability = Durability(rawValue: durability) ?? .full
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-bench-\(ProcessInfo.processInfo.processIdentifier)")
        defer { if keep { print("data kept in \(directory.path)") } else { try? FileManager.default.removeItem(at: directory) } }
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        // One context (one libzmq I/O thread, which does the CurveZMQ crypto) per party, as if
        // each were its own process.
        let context = try Context(), adapterContext = try Context(), clientContext = try Context()
        guard let transport = Transport(rawValue: transport) else { throw ValidationError("--transport must be curve or plaintext") }
        let keys = try EphemeralKeys(for: config.registry)
        let registry = keys.apply(to: config.registry)
        let broker = try Broker(configuration: BrokerConfiguration(router: "tcp://127.0.0.1:*", monitor: "tcp://127.0.0.1:*", dataDirectory: directory.appendingPathComponent("broker"), durability: durability, maxCredit: 4096, transport: transport, keys: keys.broker), registry: registry, context: context, logger: logger)
        let recipient = try Adapter(configuration: AdapterConfiguration(agency: "rsud-embung-fatimah", broker: broker.routerEndpoint, dataDirectory: directory.appendingPathComponent("adapters"), token: "bench", durability: durability, credit: 4096, transport: transport, keys: keys.agencies["rsud-embung-fatimah"], brokerKey: keys.broker.curvePublic), registry: registry, sla: .standard, context: adapterContext, logger: logger)
        defer { recipient.shutdown(); broker.shutdown() }

        let client = try BenchClient(context: clientContext, endpoint: broker.routerEndpoint, keys: keys, registry: registry, curve: transport == .curve)
        defer { client.socket.close() }
        print("rujuk bench — \(Timestamp.format(Date())), synchronous=\(durability.rawValue), transport=\(transport.rawValue), \(ProcessInfo.processInfo.activeProcessorCount) cores")
        // Warm-up, so the first connection's setup is not measured.
        _ = try client.run(referrals: (0..<200).map { _ in try client.referral() }, window: 200, interval: nil)

        var rates: [Double] = []
        for run in 1...max(1, runs) {
            let batch = try (0..<count).map { _ in try client.referral() }
            let before = broker.router.snapshot
            let cpuBefore = ProcessCPU.now(), stealBefore = stolenCPUSeconds()
            let throughput = try client.run(referrals: batch, window: window, interval: nil)
            let cpu = ProcessCPU.now() - cpuBefore, stolen = stolenCPUSeconds().map { $0 - (stealBefore ?? 0) }
            let after = broker.router.snapshot
            rates.append(Double(count) / throughput.elapsed)
            let steal = stolen.map { String(format: "; CPU stolen by the hypervisor %.1f%%", 100 * $0 / (throughput.elapsed * Double(ProcessInfo.processInfo.activeProcessorCount))) }
            print(String(format: "throughput run %d: %d referrals in %.2f s = %.0f referrals/s (under saturation: p50 %.0f ms, p99 %.0f ms); %d group commits; ",
                         run, count, throughput.elapsed, rates.last!, throughput.p(0.5), throughput.p(0.99),
                         after.batches - before.batches) + cpu.perItem(count, "referral") + (steal ?? ""))
        }
        print(String(format: "throughput: median %.0f referrals/s over %d runs", rates.sorted()[rates.count / 2], rates.count))

        for rate in rate {
            let paced = try (0..<(rate * seconds)).map { _ in try client.referral() }
            let cpuBefore = ProcessCPU.now()
            let latency = try client.run(referrals: paced, window: 100_000, interval: 1.0 / Double(rate))
            let cpu = ProcessCPU.now() - cpuBefore
            print(String(format: "latency at %d/s offered, send to the sender's copy of the receipt: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d referrals); ",
                         rate, latency.p(0.5), latency.p(0.99), latency.p(1.0), paced.count) + cpu.perItem(paced.count, "referral"))
        }
        try viewBenchmark(recipient.ledger)
        if stored > 0 {
            try restartBenchmark(directory: directory.appendingPathComponent("restart"), stored: stored, keys: keys, registry: registry, durability: durability, transport: transport)
        }
        // After the restart benchmark, whose resident memory is then not the HTTP server's too.
        if apiRequests > 0 {
            try await apiBenchmark(directory: directory.appendingPathComponent("api"), requests: apiRequests, connections: apiConnections, broker: broker, keys: keys, registry: registry, durability: durability, transport: transport)
        }
        if events > 0 {
            try eventsBenchmark(directory: directory.appendingPathComponent("events"), events: events, sla: config.sla, keys: keys, registry: registry)
        }
        if sweepHandoffs > 0 {
            try sweepBenchmark(directory: directory.appendingPathComponent("sweep"), handoffs: sweepHandoffs, sla: config.sla, keys: keys, registry: registry)
        }
    }

    /// What the agency system's reads cost on the recipient's ledger, full of the referrals the
    /// runs above stored: one inbox page of 50, and 1,000 referrals' views (their history) with
    /// the personal part and without it — the difference is what reading the body costs.
    func viewBenchmark(_ ledger: Ledger) throws {
        let inbox = { try ledger.list(direction: "inbound", status: nil, service: nil, overdueOnly: false, page: PageRequest(limit: 50)) }
        let ids = try ledger.list(direction: "inbound", status: nil, service: nil, overdueOnly: false, page: PageRequest(limit: 1000)).handoffs.map(\.id)
        func median(_ rounds: Int, _ work: () throws -> Void) rethrows -> Double {
            var times: [Double] = []
            for _ in 0..<rounds {
                let start = DispatchTime.now().uptimeNanoseconds
                try work()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3)
            }
            return times.sorted()[rounds / 2]
        }
        let page = try median(21) { _ = try inbox() }
        var views: [String: Double] = [:]
        for body in [true, false] {
            views["\(body)"] = try median(5) { for id in ids { _ = try ledger.view(id, body: body) } } / Double(ids.count)
        }
        print(String(format: "reads on the recipient's ledger: an inbox page of 50, median %.0f µs; a referral's view with its personal part %.1f µs, without it %.1f µs (%d referrals, median of 5 rounds)",
                     page, views["true"]!, views["false"]!, ids.count))
    }

    /// `count` handoffs between the police and the hospital in one transaction, created `now`,
    /// every deadline and the next check 30 days away, no personal part; their ids, in order.
    func seedHandoffs(_ ledger: Ledger, count: Int, direction: String, status: HandoffStatus, delivery: String, now: Date) throws -> [String] {
        let stamp = Timestamp.format(now), later = Timestamp.format(now + 30 * 86400)
        var ids: [String] = []
        ids.reserveCapacity(count)
        try ledger.pool.write { db in
            for index in 0..<count {
                let id = MessageID.make(at: now)
                ids.append(id)
                try db.run(ledger.statements, """
                    INSERT INTO referral (id, direction, case_ref, from_agency, to_agency, service, priority, province, regency, reason, status, delivery,
                        created_at, due_receive, due_respond, due_complete, updated_at, raw, next_check_at)
                    VALUES (?, ?, ?, 'polda-kepri', 'rsud-embung-fatimah', 'medical_care', 'routine', 'ID-KR', 'Batam', 'benchmark', ?, ?,
                        ?, ?, ?, ?, ?, ?, ?)
                    """, .text(id), .text(direction), .text("BENCH-\(index)"), .text(status.rawValue), .text(delivery),
                    .text(stamp), .text(later), .text(later), .text(later), .text(stamp), .blob([0x7B, 0x7D]), .text(later))
            }
        }
        return ids
    }

    /// The sender's side of every handoff: its ledger applying the `received` events the broker
    /// delivers for referrals it sent, as its link does in a drain — in batches of 64, each one
    /// transaction with its notifications. Three rounds of `events`, each on handoffs of its own;
    /// the median round is reported, in wall time and CPU per event (the work is on this thread).
    func eventsBenchmark(directory: URL, events: Int, sla: SLAPolicy, keys: EphemeralKeys, registry: AgencyRegistry) throws {
        let clock = SystemClock()
        let sealer = try Sealer(agency: "polda-kepri", keys: keys.agencies["polda-kepri"]!, registry: registry)
        let ledger = try Ledger(directory: directory, agency: "polda-kepri", durability: .full, clock: clock, sla: sla, registry: registry, sealer: sealer)
        let now = clock.now()
        let rounds = 3
        let ids = try seedHandoffs(ledger, count: rounds * events, direction: "outbound", status: .requested, delivery: "sent", now: now)
        var perEvent: [(wall: Double, cpu: ProcessCPU)] = []
        for round in 0..<rounds {
            let deliveries = ids[(round * events)..<((round + 1) * events)].map { id in
                let event = HandoffEvent(referralId: id, by: "rsud-embung-fatimah", status: .received, at: clock.now())
                return (DeliveryHeader(kind: .event, id: event.id, attempt: 1), JSONCoding.encode(event))
            }
            let start = DispatchTime.now().uptimeNanoseconds, cpuBefore = ProcessCPU.now()
            var applied = 0
            for batch in stride(from: 0, to: deliveries.count, by: 64) {
                applied += try ledger.storeDeliveries(Array(deliveries[batch..<min(batch + 64, deliveries.count)])).new
            }
            let cpu = ProcessCPU.now() - cpuBefore
            perEvent.append((Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3 / Double(events), cpu))
            let received = try ledger.pool.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM referral WHERE direction = 'outbound' AND status = 'received'") ?? 0
            }
            guard applied == events, received == (round + 1) * events else {
                throw CLIError("events benchmark: applied \(applied) of \(events), \(received) handoffs received after round \(round + 1)")
            }
        }
        let median = perEvent.sorted { $0.wall < $1.wall }[rounds / 2]
        print(String(format: "a sender's ledger applying `received` events, %d a round in batches of 64 (3 rounds): median %.1f µs per event; ", events, median.wall)
              + median.cpu.perItem(events, "event"))
        _ = try ledger.close()
    }

    /// The SLA sweep at scale: `handoffs` open handoffs in one ledger, of which 100 are due.
    /// Times the sweep that finds and acts on those 100 (a warning each), 11 rounds.
    func sweepBenchmark(directory: URL, handoffs: Int, sla: SLAPolicy, keys: EphemeralKeys, registry: AgencyRegistry) throws {
        let clock = SystemClock()
        let sealer = try Sealer(agency: "rsud-embung-fatimah", keys: keys.agencies["rsud-embung-fatimah"]!, registry: registry)
        let ledger = try Ledger(directory: directory, agency: "rsud-embung-fatimah", durability: .full, clock: clock, sla: sla, registry: registry, sealer: sealer)
        let now = clock.now()
        let stamp = Timestamp.format(now)
        let seedStart = DispatchTime.now().uptimeNanoseconds
        let ids = try seedHandoffs(ledger, count: handoffs, direction: "inbound", status: .received, delivery: "received", now: now)
        let seeded = Double(DispatchTime.now().uptimeNanoseconds - seedStart) / 1e9
        var generator = SystemRandomNumberGenerator()
        var sweeps: [Double] = []
        var finds: [Double] = []
        for _ in 0..<11 {
            // 100 handoffs whose respond deadline is a minute away: each gets a due-soon warning.
            let due = Timestamp.format(clock.now() + 60)
            let chosen = (0..<100).map { _ in ids[Int.random(in: 0..<ids.count, using: &generator)] }
            try ledger.pool.write { db in
                for id in chosen {
                    try db.run(ledger.statements, "UPDATE referral SET due_respond = ?, told = '', next_check_at = ? WHERE id = ?", .text(due), .text(stamp), .text(id))
                }
            }
            let findStart = DispatchTime.now().uptimeNanoseconds
            let found = try ledger.pool.read { db in
                try String.fetchAll(db, sql: "SELECT id FROM referral WHERE next_check_at IS NOT NULL AND next_check_at <= ? ORDER BY next_check_at LIMIT 500",
                                    arguments: [Timestamp.format(clock.now())])
            }
            finds.append(Double(DispatchTime.now().uptimeNanoseconds - findStart) / 1e6)
            let sweepStart = DispatchTime.now().uptimeNanoseconds
            let result = try ledger.sweep(limit: 500)
            sweeps.append(Double(DispatchTime.now().uptimeNanoseconds - sweepStart) / 1e6)
            guard found.count == Set(chosen).count, result.examined == found.count, result.warned == found.count else {
                throw CLIError("sweep benchmark: expected \(Set(chosen).count) due, found \(found.count), swept \(result.examined), warned \(result.warned)")
            }
        }
        sweeps.sort()
        finds.sort()
        print(String(format: "SLA sweep, %d open handoffs in the ledger (seeded in %.1f s): finding the 100 due takes median %.2f ms (max %.2f); the sweep that finds them and records a warning for each, in one transaction with fsync, median %.2f ms (max %.2f), 11 rounds",
                     handoffs, seeded, finds[5], finds[10], sweeps[5], sweeps[10]))
    }
}

/// CPU time of this process, in seconds, in user space and in the kernel: at a low rate the
/// kernel's part (waking threads, switching between them, the disk's I/O) is as large as the
/// parties' own, at saturation a fifth of it (docs/performance.md).
struct ProcessCPU {
    var user: Double
    var kernel: Double
    var total: Double { user + kernel }

    /// So far.
    static func now() -> ProcessCPU {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return ProcessCPU(user: seconds(usage.ru_utime), kernel: seconds(usage.ru_stime))
    }

    static func - (after: ProcessCPU, before: ProcessCPU) -> ProcessCPU {
        ProcessCPU(user: after.user - before.user, kernel: after.kernel - before.kernel)
    }

    /// "process CPU N µs per <unit> (user U, kernel K)".
    func perItem(_ count: Int, _ unit: String) -> String {
        let scale = 1e6 / Double(max(1, count))
        return String(format: "process CPU %.0f µs per %@ (user %.0f, kernel %.0f)", total * scale, unit, user * scale, kernel * scale)
    }
}

/// CPU time the hypervisor gave other guests while this one wanted it ("steal", /proc/stat),
/// all cores, in seconds; nil where there is no such figure. On a shared machine it says how
/// much a run was disturbed.
func stolenCPUSeconds() -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
          let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
    let fields = line.split(separator: " ").dropFirst()
    guard fields.count >= 8, let steal = Double(fields[fields.startIndex + 7]) else { return nil }
    return steal / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// The sending side of the benchmark: an RRP peer as polda-kepri.
final class BenchClient {
    let socket: Socket

    struct Result {
        var elapsed: Double
        var latencies: [Double]
        func p(_ q: Double) -> Double {
            let sorted = latencies.sorted()
            return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * q))] * 1000
        }
    }

    let sealer: Sealer
    /// Held so the context outlives the socket (closing a context waits for its sockets).
    let context: Context

    init(context: Context, endpoint: String, keys: EphemeralKeys, registry: AgencyRegistry, curve: Bool) throws {
        self.context = context
        let own = keys.agencies["polda-kepri"]!
        sealer = try Sealer(agency: "polda-kepri", keys: own, registry: registry)
        socket = try Socket(context, .dealer)
        try socket.set(ZMQ_SNDHWM, Int32(0))
        try socket.set(ZMQ_RCVHWM, Int32(0))
        if curve { try socket.makeCurveClient(serverKey: keys.broker.curvePublic, publicKey: own.curvePublic, secretKey: own.curveSecret) }
        try socket.connect(endpoint)
        try socket.send(RRPCodec.encode(.hello(Hello(agency: "polda-kepri", credit: 4096, heartbeatMs: 60_000))))
        guard let reply = try socket.receive(), case .ready = try RRPCodec.decode(reply.frames) else {
            throw CLIError("bench: no READY")
        }
    }

    /// A referral as polda-kepri's adapter would send it, its personal part sealed for the recipient.
    func referral(to recipient: String = "rsud-embung-fatimah", service: Service = .medicalCare) throws -> (id: String, bytes: [UInt8]) {
        let now = Date()
        let consent = Consent(status: .given, scope: [.health, .shelter], date: now, recordedBy: "bench")
        let body = ReferralBody(
            subject: Subject(ageBand: "25-34", gender: "female", nationality: "ID", languages: ["id"], child: false, needs: [], name: "Bench Person", contact: "+62 000"),
            consent: consent, notes: String(repeating: "n", count: 400))
        var referral = Referral(
            caseRef: "BENCH-1", from: "polda-kepri", to: recipient, service: service, priority: .urgent,
            location: Location(province: "ID-KR", regency: "21.71"), reason: .medicalExamination, createdAt: now,
            dueReceive: now + 3600, dueRespond: now + 7200, dueComplete: now + 86400,
            consent: ConsentClaim(consent), sealed: SealedBody(enc: "", ct: ""))
        referral.sealed = try sealer.seal(body, for: referral)
        return (referral.id, RRPCodec.encode(RRPCodec.refer(referral))[2])
    }

    /// Sends the referrals (paced by `interval`, or as fast as `window` allows) and waits for
    /// each one's `received` event.
    func run(referrals: [(id: String, bytes: [UInt8])], window: Int, interval: Double?) throws -> Result {
        var sentAt: [String: UInt64] = [:]
        var latencies: [Double] = []
        latencies.reserveCapacity(referrals.count)
        let start = DispatchTime.now().uptimeNanoseconds
        var next = 0
        var done = 0
        while done < referrals.count {
            let now = DispatchTime.now().uptimeNanoseconds
            while next < referrals.count, sentAt.count < window {
                if let interval, Double(now - start) / 1e9 < Double(next) * interval { break }
                sentAt[referrals[next].id] = DispatchTime.now().uptimeNanoseconds
                try socket.send([RRPCodec.header, Array("REFER".utf8), referrals[next].bytes])
                next += 1
            }
            var wait = 1
            if let interval, next < referrals.count {
                // Rounded up to the next millisecond, zmq_poll's unit: rounded down, the client
                // spun on a zero timeout for most of each interval and took a core from the
                // parties it measures (the sender is on another host in a deployment).
                let due = Int64(start) + Int64(Double(next) * interval * 1e9)
                let remaining = due - Int64(DispatchTime.now().uptimeNanoseconds)
                wait = remaining <= 0 ? 0 : Int((remaining + 999_999) / 1_000_000)
            } else {
                wait = 100
            }
            _ = try poll([.socket(socket)], timeoutMilliseconds: wait)
            var receipts: [String] = []
            while let message = try socket.receive(dontWait: true) {
                let decoded = try RRPCodec.decode(message.frames, maxMessageBytes: .max)
                // Answered like any peer: a client that only waits (for the first events, or
                // under valgrind, which runs everything ~50x slower) is not silent for long
                // enough that the broker closes its session for a missed heartbeat.
                if case .ping = decoded { try socket.send(RRPCodec.encode(.pong)) }
                guard case .deliver(let header, let payload) = decoded else { continue }
                receipts.append(header.id)
                if header.kind == .event, let ref = try? JSONFields(parsing: payload).string("referral_id"), let sent = sentAt.removeValue(forKey: ref) {
                    latencies.append(Double(DispatchTime.now().uptimeNanoseconds - sent) / 1e9)
                    done += 1
                }
            }
            if !receipts.isEmpty { try socket.send(RRPCodec.encode(.receipt(Receipt(ids: receipts)))) }
        }
        return Result(elapsed: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, latencies: latencies)
    }
}

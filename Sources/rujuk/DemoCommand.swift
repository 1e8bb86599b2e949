import ArgumentParser
import Foundation
import Logging
import RujukAdapter
import RujukBroker
import RujukCore
import RujukStorage
import ServiceLifecycle
import UnixSignals
import ZeroMQ

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the sample network in one process and play a realistic scenario.",
        discussion: """
            A broker and adapters for the Batam pilot, data in a temporary directory. Police in \
            Batam refer a rescued migrant worker to the hospital, LPSK and a legal aid MoU partner; \
            the consulate in Johor Bahru refers a returnee to the Batam shelter, which is offline \
            for a while and receives on reconnect; one recipient declines. Every handoff is printed \
            as it happens (ids, agencies, services and states only — never personal data). The \
            APIs stay up until Ctrl-C; --once exits after the scenario.
            """)

    @OptionGroup var options: ConfigOptions
    @Flag(help: "Exit after the scenario.") var once = false
    @Option(help: "The broker's HTTP port (0 picks a free one).") var httpPort: Int = 7780
    @Option(help: "The monitor feed's port, for `rujuk watch` (0 picks a free one).") var monitorPort: Int = 7701
    @Option(help: "How much faster than real time the demo's clock runs, so SLA clocks run out within the minute.") var speed: Double = 600

    func run() async throws {
        let config = try options.load()
        // The demo's made-up people are personal data like any other: a directory only this
        // account can read, removed when the demo ends, Ctrl-C included.
        let directory = try PrivateFiles.makeTemporaryDirectory(prefix: "rujuk-demo")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withThrowingTaskGroup(of: Void.self) { race in
            race.addTask { try await play(config, in: directory) }
            race.addTask { for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) { return } }
            try await race.next()
            race.cancelAll()
        }
    }

    /// The network and the scenario; returns after it with `--once`, or runs until cancelled.
    private func play(_ config: RujukConfiguration, in directory: URL) async throws {
        var logger = Logger(label: "rujuk.demo")
        logger.logLevel = .critical
        let context = try Context()
        let clock = AcceleratedClock(factor: max(1, speed))
        // Keys made for this run, in memory: every referral's personal part is sealed for its
        // recipient, as in a deployment. The transport is plaintext on loopback (the one place
        // it is allowed), so that `rujuk watch` can follow the demo without a key.
        let keys = try EphemeralKeys(for: config.registry)
        let registry = keys.apply(to: config.registry)
        let brokerConfig = BrokerConfiguration(router: "tcp://127.0.0.1:*", monitor: "tcp://127.0.0.1:\(monitorPort == 0 ? "*" : String(monitorPort))", http: HostPort(host: "127.0.0.1", port: httpPort), dataDirectory: directory.appendingPathComponent("broker"), heartbeatMs: 500, transport: .plaintext, apiTokens: ["demo": "demo-coordinator"])
        let broker = try Broker(configuration: brokerConfig, registry: registry, context: context, clock: clock, logger: logger)
        print("Rujuk demo — data in \(directory.path); the clock runs \(Int(clock.factor))× real time")
        print("broker: router \(broker.routerEndpoint)")

        var adapters: [String: Adapter] = [:]
        defer {
            for adapter in adapters.values { adapter.shutdown() }
            broker.shutdown()
        }
        func start(_ agency: String) throws -> Adapter {
            let adapterConfig = AdapterConfiguration(agency: agency, broker: broker.routerEndpoint, api: HostPort(host: "127.0.0.1", port: 0), dataDirectory: directory.appendingPathComponent("adapters"), token: "demo-\(agency)", heartbeatMs: 500, sweepInterval: 0.1, transport: .plaintext, keys: keys.agencies[agency])
            let adapter = try Adapter(configuration: adapterConfig, registry: registry, sla: config.sla, context: context, clock: clock, logger: logger)
            adapters[agency] = adapter
            return adapter
        }
        let online = ["polda-kepri", "rsud-embung-fatimah", "lpsk", "lbh-batam", "pbh-peradi-batam", "kjri-johor-bahru", "kbri-kuala-lumpur", "gugus-tugas-nasional"]
        for agency in online { _ = try start(agency) }

        let printer = Printer()
        let started = adapters
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await broker.run() }
            for adapter in started.values { group.addTask { try await adapter.run() } }
            group.addTask {
                while !Task.isCancelled {
                    for adapter in started.values { printer.drain(adapter) }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            adapters = try await scenario(started, start: start, printer: printer, group: &group)
            if let port = broker.boundHTTPPort {
                print("\nbroker dashboard: http://127.0.0.1:\(port)/dashboard")
                print("broker status API: http://127.0.0.1:\(port)/api/handoffs  (Authorization: Bearer demo-coordinator)")
            }
            print("monitor feed: \(broker.monitorEndpoint)  (RUJUK_STATUS_TOKEN=demo-coordinator rujuk watch --monitor \(broker.monitorEndpoint)\(broker.boundHTTPPort.map { " --status http://127.0.0.1:\($0)" } ?? ""))")
            for (agency, adapter) in adapters.sorted(by: { $0.key < $1.key }) {
                if let port = adapter.boundHTTPPort { print("adapter \(agency): http://127.0.0.1:\(port)  token demo-\(agency)") }
            }
            if once {
                group.cancelAll()
            } else {
                print("\nAPIs are up; Ctrl-C to stop.")
                // Until Ctrl-C (or SIGTERM) cancels this task from `run`.
                while true { try await Task.sleep(for: .seconds(3600)) }
            }
        }
    }

    /// Prints each adapter's notifications once, as they arrive.
    final class Printer: @unchecked Sendable {
        private let cursors = Locked<[String: Int64]>([:])
        private let start = Date()

        /// Prints what is new; the lock makes concurrent drains of one adapter print each line once.
        func drain(_ adapter: Adapter) {
            cursors.withLock { cursors in
                let after = cursors[adapter.agency] ?? 0
                guard let batch = try? adapter.ledger.notifications(after: after), let last = batch.last else { return }
                for (_, payload) in batch {
                    guard let note = try? JSONCoding.decode(Notification.self, from: payload, what: "notification") else { continue }
                    let clock = String(format: "%6.2fs", Date().timeIntervalSince(start))
                    if let escalation = note.escalation {
                        // Escalations: the sender's own notice, and the copy a target is told.
                        let what = escalation.notice == .breach
                            ? "ESCALATED level \(escalation.level): the \(escalation.clock.rawValue) clock ran out; told \(escalation.targets.joined(separator: ", "))"
                                + (escalation.suggestions.isEmpty ? "" : "; could also serve: \(escalation.suggestions.joined(separator: ", "))")
                            : "escalation RESOLVED (\(escalation.clock.rawValue) clock met, status \(escalation.status.rawValue))"
                        let side = adapter.agency == escalation.from ? "sender" : "task force"
                        print("[\(clock)] \(escalation.referralId.suffix(12))  \(escalation.from) → \(escalation.to)  \(escalation.service.rawValue)/\(escalation.priority.rawValue)  \(what)  [seen by \(side) \(adapter.agency)]")
                        continue
                    }
                    guard let view = note.handoff else { continue }
                    let what: String = switch note.type {
                    case "referral.received": "received (stored in \(view.to)'s ledger)"
                    case "referral.sent": "committed at the broker"
                    case "handoff.updated": "\(note.event?.status.rawValue ?? "?") by \(note.event?.by ?? "?")"
                    default: note.type
                    }
                    let side = adapter.agency == view.from ? "sender" : "recipient"
                    print("[\(clock)] \(view.id.suffix(12))  \(view.from) → \(view.to)  \(view.service.rawValue)/\(view.priority.rawValue)  \(what)  [seen by \(side) \(adapter.agency)]")
                }
                cursors[adapter.agency] = last.0
            }
        }
    }

    private func scenario(_ initial: [String: Adapter], start: (String) throws -> Adapter, printer: Printer, group: inout ThrowingTaskGroup<Void, any Error>) async throws -> [String: Adapter] {
        var adapters = initial
        func wait(_ what: String, _ condition: () throws -> Bool) async throws {
            let deadline = Date() + 30
            while try !condition() {
                guard Date() < deadline else { throw CLIError("demo: timed out waiting for \(what)") }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        func say(_ text: String) {
            for adapter in adapters.values { printer.drain(adapter) }
            print(text)
        }
        func status(_ agency: String, _ id: String) throws -> HandoffStatus? { try adapters[agency]?.ledger.view(id, history: false, body: false)?.status }

        func person(_ needs: [String], _ scope: [AgencyKind]) -> ReferralBody {
            ReferralBody(
                subject: Subject(ageBand: "25-34", gender: "female", nationality: "ID", languages: ["id", "sas"], child: false, needs: needs, name: "(demo person)", contact: "via Polda Kepri PPA unit"),
                consent: Consent(status: .given, scope: scope, date: Date(), recordedBy: "polda-kepri/ppa-unit/ipda-0193"),
                notes: "Rescued at Batu Ampar port; recruited in East Lombok for a plantation job in Malaysia.")
        }
        say("\n— Police in Batam refer a rescued migrant worker to the hospital, LPSK and a legal aid MoU partner")
        let police = adapters["polda-kepri"]!
        let body = person(["interpreter"], [.health, .witnessProtection, .legalAid, .shelter])
        let medical = try police.refer(ReferralRequest(caseRef: "KR-BTM-2026-0041", to: "rsud-embung-fatimah", service: .medicalCare, priority: .emergency, reason: .medicalExamination, body: body.saying("post-rescue medical examination and treatment")))
        let protection = try police.refer(ReferralRequest(caseRef: "KR-BTM-2026-0041", to: "lpsk", service: .witnessProtection, priority: .urgent, reason: .witnessProtection, body: body.saying("witness in a TPPO investigation; protection request")))
        let legal = try police.refer(ReferralRequest(caseRef: "KR-BTM-2026-0041", to: "lbh-batam", service: .legalAid, priority: .urgent, reason: .legalAssistance, body: body.saying("legal assistance and restitution claim")))
        try await wait("hospital receives") { try status("rsud-embung-fatimah", medical.id) != nil }
        _ = try adapters["rsud-embung-fatimah"]!.change(medical.id, to: .accepted)
        _ = try adapters["rsud-embung-fatimah"]!.change(medical.id, to: .inProgress)
        try await wait("LPSK receives") { try status("lpsk", protection.id) != nil }
        _ = try adapters["lpsk"]!.change(protection.id, to: .accepted)

        say("\n— LBH Batam declines (conflict of interest); police re-refer to PBH Peradi Batam")
        try await wait("LBH receives") { try status("lbh-batam", legal.id) != nil }
        _ = try adapters["lbh-batam"]!.change(legal.id, to: .declined, reason: .conflictOfInterest, note: UpdateNote(reason: "already representing a co-defendant"))
        try await wait("police see the decline") { try status("polda-kepri", legal.id) == .declined }
        let legal2 = try police.refer(ReferralRequest(caseRef: "KR-BTM-2026-0041", to: "pbh-peradi-batam", service: .legalAid, priority: .urgent, reason: .legalAssistance, body: body.saying("legal assistance and restitution claim (re-referral)")))
        try await wait("PBH receives") { try status("pbh-peradi-batam", legal2.id) != nil }
        _ = try adapters["pbh-peradi-batam"]!.change(legal2.id, to: .accepted)

        say("\n— The consulate in Johor Bahru refers a returnee to the Batam shelter, which is offline")
        let consulate = adapters["kjri-johor-bahru"]!
        let shelterReferral = try consulate.refer(ReferralRequest(
            caseRef: "KJRI-JHB-2026-0112", to: "uptd-ppa-batam", service: .shelter, priority: .urgent,
            location: Location(province: "MY-01"), reason: .safeShelter,
            body: ReferralBody(subject: Subject(ageBand: "18-24", gender: "female", nationality: "ID", languages: ["id"], child: false, needs: [], name: "(demo returnee)"),
                               consent: Consent(status: .given, scope: [.shelter], date: Date(), recordedBy: "kjri-jhb/citizen-services"),
                               reason: "returnee arriving by ferry at Batam Centre; needs shelter")))
        try await wait("committed at the broker") { try consulate.ledger.view(shelterReferral.id, history: false, body: false)?.delivery == "sent" }
        try await Task.sleep(for: .seconds(2))
        say("\n— The shelter's adapter comes online")
        let shelter = try start("uptd-ppa-batam")
        adapters["uptd-ppa-batam"] = shelter
        group.addTask { try await shelter.run() }
        group.addTask { while !Task.isCancelled { printer.drain(shelter); try await Task.sleep(for: .milliseconds(50)) } }
        try await wait("shelter receives on reconnect") { try status("uptd-ppa-batam", shelterReferral.id) != nil }
        _ = try shelter.change(shelterReferral.id, to: .accepted)
        try await wait("consulate sees it accepted") { try status("kjri-johor-bahru", shelterReferral.id) == .accepted }

        say("\n— The hospital completes its service")
        _ = try adapters["rsud-embung-fatimah"]!.change(medical.id, to: .completed, outcome: .serviceProvided, note: UpdateNote(outcome: "treated for dehydration and injuries; discharged to shelter"))
        try await wait("police see it completed") { try status("polda-kepri", medical.id) == .completed }
        try await wait("pbh accepted seen") { try status("polda-kepri", legal2.id) == .accepted }
        say("\n— The embassy in Kuala Lumpur refers a returnee home to East Lombok; Dinas Sosial Lombok Timur is not connected")
        let embassy = adapters["kbri-kuala-lumpur"]!
        let homeReferral = try embassy.refer(ReferralRequest(
            caseRef: "KBRI-KL-2026-0307", to: "dinsos-lombok-timur", service: .reintegration, priority: .urgent,
            location: Location(province: "MY-14"), reason: .reintegration,
            body: ReferralBody(subject: Subject(ageBand: "25-34", gender: "male", nationality: "ID", languages: ["id", "sas"], child: false, needs: [], name: "(demo returnee 2)"),
                               consent: Consent(status: .given, scope: [.socialServices], date: Date(), recordedBy: "kbri-kl/citizen-services"),
                               reason: "returnee flying home to Lombok; needs reintegration support on arrival")))
        say("  (its receive clock is 1 hour: \(Int(3600 / max(1, speed))) s at this speed; the embassy's adapter escalates when it runs out)")
        try await wait("the embassy escalates") { try !embassy.ledger.escalations(referralID: homeReferral.id).escalations.isEmpty }
        try await wait("the national task force is told") { try !adapters["gugus-tugas-nasional"]!.ledger.escalations(referralID: homeReferral.id).escalations.isEmpty }
        say("\n— Dinas Sosial Lombok Timur's adapter comes online; the escalation is resolved")
        let lombok = try start("dinsos-lombok-timur")
        adapters["dinsos-lombok-timur"] = lombok
        group.addTask { try await lombok.run() }
        group.addTask { while !Task.isCancelled { printer.drain(lombok); try await Task.sleep(for: .milliseconds(50)) } }
        try await wait("the national task force is told it is resolved") {
            try adapters["gugus-tugas-nasional"]!.ledger.escalations(referralID: homeReferral.id).escalations.contains { $0.notice == .resolved }
        }
        try await Task.sleep(for: .milliseconds(200))  // let the printer show the last notices
        say("\nScenario complete: 6 referrals, 1 declined, 1 delivered after the recipient came online, 1 escalated and resolved, none lost.")
        return adapters
    }
}

private extension ReferralBody {
    /// The body with the sender's words on why: sealed for the recipient, never in the envelope.
    func saying(_ reason: String) -> ReferralBody {
        var body = self
        body.reason = reason
        return body
    }
}

import Foundation
import Hummingbird
import Logging
import NIOCore
import RujukCore
import RujukHTTP
import RujukStorage
import ServiceLifecycle
import ZeroMQ

/// An agency's adapter: its ledger, its link to the broker, its local API and webhook.
/// Runs as one `Service` that stops gracefully: the API stops, the link finishes, the ledger closes.
public final class Adapter: ServiceLifecycle.Service, @unchecked Sendable {
    public let configuration: AdapterConfiguration
    public let ledger: Ledger
    public let link: BrokerLink
    public let hub = NotificationHub()
    public let token: String
    /// Deliveries refused for reasons that point at an attack (a seal that does not open, a
    /// delivery for another agency), counted for `/health` and logged rate-limited.
    public let securityEvents: SecurityEvents
    let registry: AgencyRegistry
    let sla: SLAPolicy
    let clock: any RujukCore.Clock
    let sealer: Sealer
    private let logger: Logger
    private let httpPort = Locked<Int?>(nil)

    public var agency: String { configuration.agency }

    public init(configuration: AdapterConfiguration, registry: AgencyRegistry, sla: SLAPolicy, context: Context, clock: any RujukCore.Clock = SystemClock(), logger: Logger) throws {
        guard registry[configuration.agency] != nil else {
            throw RujukError(.unknownAgency, "agency '\(configuration.agency)' is not in the registry")
        }
        try configuration.checkExposure()
        self.configuration = configuration
        self.registry = registry
        self.sla = sla
        self.clock = clock
        self.logger = logger
        let keys = try configuration.loadKeys()
        sealer = try Sealer(agency: configuration.agency, keys: keys, registry: registry)
        // Before SQLite opens the ledger: it gives a new -wal and -shm the ledger's own mode.
        try PrivateFiles.makeDirectory(configuration.dataDirectory)
        try PrivateFiles.tighten(configuration.dataDirectory, logger: logger)
        ledger = try Ledger(directory: configuration.agencyDirectory, agency: configuration.agency, durability: configuration.durability, clock: clock, sla: sla, registry: registry, sealer: sealer)
        token = try configuration.token ?? Self.loadOrCreateToken(in: configuration.agencyDirectory)
        if configuration.transport == .curve, configuration.brokerSignKey == nil {
            // Without it, nothing outside the broker can show that its audit log was rewritten.
            logger.warning("security: no [adapter] broker_sign_key; the broker's audit checkpoints will be dropped")
        }
        let hub = self.hub
        let events = SecurityEvents(clock: clock)
        securityEvents = events
        link = BrokerLink(configuration: configuration, keys: keys, ledger: ledger, context: context, logger: logger, securityEvents: events,
                          onChange: { hub.poke() })
        link.start()
    }

    /// The API token file, `<agency dir>/api.token`, created with a random token and mode 0600.
    public static func tokenFile(in directory: URL) -> URL { directory.appendingPathComponent("api.token") }

    static func loadOrCreateToken(in directory: URL) throws -> String {
        try APITokenFile.loadOrCreate(tokenFile(in: directory))
    }

    /// The token in an adapter's token file, or nil when there is none yet; refuses a file that
    /// others can read.
    public static func readToken(in directory: URL) throws -> String? {
        try APITokenFile.load(tokenFile(in: directory))
    }

    public var boundHTTPPort: Int? { httpPort.current }

    // MARK: - What the API does

    /// Validates, stamps and records a new referral; when this returns it is in the outbox.
    ///
    /// The personal part is sealed here for the recipient; the ledger keeps this agency's own
    /// copy of it sealed under its at-rest key (until `purge`), the outbox only the sealed referral.
    public func refer(_ request: ReferralRequest) throws -> HandoffView {
        let referral = try stamped(request)
        try ledger.requests.writeAndWait(ledger.newReferral(referral, body: request.body))
        return try queued(referral)
    }

    /// `refer` as the API runs it: the wait for the ledger's commit holds no thread, so
    /// requests that arrive together share one commit.
    public func submit(_ request: ReferralRequest) async throws -> HandoffView {
        let referral = try stamped(request)
        try await ledger.requests.write(ledger.newReferral(referral, body: request.body))
        return try queued(referral)
    }

    private func stamped(_ request: ReferralRequest) throws -> Referral {
        guard let me = registry[agency] else { throw RujukError(.unknownAgency, "agency '\(agency)' is not in the registry") }
        let now = clock.now()
        try ReferralValidation.validate(request.body)
        let due = sla.deadlines(service: request.service, priority: request.priority, createdAt: now)
        var referral = Referral(
            id: request.id ?? MessageID.make(at: now), caseRef: request.caseRef, from: agency, to: request.to,
            service: request.service, priority: request.priority,
            location: request.location ?? Location(province: me.province, regency: me.regencyCode),
            reason: request.reason, createdAt: now, dueReceive: due.receive, dueRespond: due.respond, dueComplete: due.complete,
            consent: ConsentClaim(request.body.consent), sealed: SealedBody(enc: "", ct: ""))
        // What the broker will check, checked first here, so the agency system hears at once.
        try registry.authorize(referral)
        referral.sealed = try sealer.seal(request.body, for: referral)
        try ReferralValidation.validate(referral)
        return referral
    }

    private func queued(_ referral: Referral) throws -> HandoffView {
        link.outboxChanged()
        hub.poke()
        logger.info("referral queued", metadata: ["handoff.id": "\(referral.id)", "agency.to": "\(referral.to)", "service": "\(referral.service.rawValue)"])
        return try ledger.view(referral.id)!
    }

    /// Applies a status change by this agency and queues it for the broker.
    ///
    /// `reason` (a decline or cancellation) and `outcome` (a completion) are codes; `note` holds
    /// the words, if any, sealed for the other agency.
    public func change(_ id: String, to status: HandoffStatus, reason: ClosingReason? = nil, outcome: Outcome? = nil, note: UpdateNote? = nil) throws -> HandoffView {
        try ledger.requests.writeAndWait(ledger.localChange(referralID: id, status: status, reason: reason, outcome: outcome, note: note))
        return try changed(id, to: status)
    }

    /// `change` as the API runs it, sharing the ledger's commit with other requests.
    public func submitChange(_ id: String, to status: HandoffStatus, reason: ClosingReason?, outcome: Outcome?, note: UpdateNote?) async throws -> HandoffView {
        try await ledger.requests.write(ledger.localChange(referralID: id, status: status, reason: reason, outcome: outcome, note: note))
        return try changed(id, to: status)
    }

    private func changed(_ id: String, to status: HandoffStatus) throws -> HandoffView {
        link.outboxChanged()
        hub.poke()
        logger.info("status changed", metadata: ["handoff.id": "\(id)", "status": "\(status.rawValue)"])
        return try ledger.view(id)!
    }

    /// Runs the SLA clocks now: every escalation, resolution and warning that is due. The
    /// running adapter does this every `sweep_interval`; tests call it after moving a clock.
    @discardableResult
    public func sweepNow() -> SweepResult {
        var total = SweepResult()
        do {
            while true {
                let result = try ledger.sweep(limit: 500)
                total.examined += result.examined
                total.escalated += result.escalated
                total.resolved += result.resolved
                total.warned += result.warned
                if result.examined < 500 { break }
            }
        } catch {
            logger.error("SLA sweep failed; it will run again", metadata: ["error": "\(error)"])
        }
        logger.securitySummaries(securityEvents)
        if total.acted {
            if total.escalated + total.resolved > 0 {
                logger.warning("handoffs escalated", metadata: ["escalated": "\(total.escalated)", "resolved": "\(total.resolved)"])
            }
            link.outboxChanged()
            hub.poke()
        }
        return total
    }

    // MARK: - Running

    public func run() async throws {
        let port = httpPort
        let app = Application(
            router: AdapterAPI(adapter: self).routes(),
            server: HTTPListener.server(configuration.apiListener),
            configuration: .init(address: .hostname(configuration.api.host, port: configuration.api.port), serverName: "rujuk-adapter"),
            onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } },
            logger: logger
        )
        let hub = self.hub
        let webhook = configuration.webhook.map { WebhookSender(configuration: $0, ledger: ledger, hub: hub, logger: logger) }
        defer {
            hub.finishAll()
            link.stop()
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // Keepalive for SSE streams, and a periodic look for webhook retries.
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(15))
                    hub.poke()
                }
            }
            if let webhook { group.addTask { await webhook.run() } }
            group.addTask { [self] in
                // The SLA clocks: a sweep finds what is due through the ledger's index.
                while !Task.isCancelled {
                    sweepNow()
                    try? await Task.sleep(for: .seconds(configuration.sweepInterval))
                }
            }
            try await app.run()
            group.cancelAll()
        }
    }

    /// Stops the link thread; for embedding without ServiceLifecycle.
    public func shutdown() {
        hub.finishAll()
        link.stop()
    }
}

import Foundation
import GRDB

/// How much of each scenario to run: `full` is the issue's counts (locally, for the README),
/// `ci` a reduced count that fits CI's time.
struct Scale: Sendable {
    var referrals: Int
    var brokerKills: Int
    var crashes: Int
    var backlog: Int

    static let full = Scale(referrals: 20_000, brokerKills: 20, crashes: 10, backlog: 100_000)
    static let ci = Scale(referrals: 2_000, brokerKills: 3, crashes: 3, backlog: 5_000)
}

/// The outcome of one scenario, as printed and as the README table reports it.
struct ScenarioResult: Sendable {
    var name: String
    var verdict: Verdict?
    /// Other things the scenario checked, each with whether it held.
    var checks: [(String, Bool)] = []
    /// Figures measured on the way (restart time, drain time).
    var figures: [(String, String)] = []
    var seconds: Double = 0
    var skipped: String?

    var passed: Bool { skipped != nil || ((verdict?.passed ?? true) && checks.allSatisfy(\.1)) }
}

/// What every scenario shares: a cluster, the agency systems, the load and the settling.
struct ScenarioContext {
    let binary: URL
    let configDirectory: URL
    let directory: URL
    let scale: Scale
    let log: (String) -> Void

    static let senders = ["polda-kepri", "kjri-johor-bahru"]
    static let recipients = ["rsud-embung-fatimah", "uptd-ppa-batam"]

    func makeCluster(_ name: String, brokerData: URL? = nil, agencySystemHost: String = "127.0.0.1",
                     adapterBrokerEndpoint: ((Int) throws -> String)? = nil, isolated: NetworkNamespace? = nil) async throws -> Cluster {
        let system = try AgencySystem(host: agencySystemHost)
        try await system.start()
        return try Cluster(binary: binary, configDirectory: configDirectory, directory: directory.appendingPathComponent(name),
                           agencies: Self.senders + Self.recipients, recipients: Set(Self.recipients), agencySystem: system,
                           brokerData: brokerData, adapterBrokerEndpoint: adapterBrokerEndpoint, isolated: isolated)
    }

    /// Starts the broker and every adapter, and waits until all are connected.
    func startAll(_ cluster: Cluster, except: Set<String> = []) async throws {
        try await cluster.startBroker()
        for agency in Self.senders + Self.recipients where !except.contains(agency) {
            try await cluster.startAdapter(agency)
        }
        for agency in Self.senders + Self.recipients where !except.contains(agency) {
            try await cluster.waitConnected(agency)
        }
    }

    /// Waits until the network has nothing left to do — every acknowledged referral at its
    /// agency system, every receipt back at its sender, every webhook sent — then judges.
    func settle(_ cluster: Cluster, _ load: LoadGenerator, timeout: TimeInterval = 600) async throws -> Verdict {
        let started = Date()
        var verdict = try judge(cluster, load)
        while Date().timeIntervalSince(started) < timeout {
            verdict = try judge(cluster, load)
            if verdict.lost.isEmpty, verdict.unconfirmed.isEmpty, try webhooksIdle(cluster) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        log("    settled in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        return try judge(cluster, load)
    }

    func judge(_ cluster: Cluster, _ load: LoadGenerator) throws -> Verdict {
        var committed = Set<String>(), confirmed = Set<String>()
        for sender in Self.senders where FileManager.default.fileExists(atPath: cluster.ledgerPath(sender)) {
            try cluster.readLedger(sender) { db in
                committed.formUnion(try String.fetchAll(db, sql: "SELECT referral_id FROM outbox WHERE kind = 'refer' AND committed_at IS NOT NULL"))
                confirmed.formUnion(try String.fetchAll(db, sql: "SELECT id FROM referral WHERE direction = 'outbound' AND status <> 'requested'"))
            }
        }
        return Checker.check(submissions: load.submissions, deliveries: cluster.agencySystem.deliveries,
                             committedAtSenders: committed, confirmedAtSenders: confirmed)
    }

    private func webhooksIdle(_ cluster: Cluster) throws -> Bool {
        for recipient in Self.recipients where FileManager.default.fileExists(atPath: cluster.ledgerPath(recipient)) {
            let waiting = try cluster.readLedger(recipient) { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM notification WHERE webhook_done_at IS NULL AND webhook_failed = 0") ?? 0
            }
            if waiting > 0 { return false }
        }
        return true
    }

    /// Referrals the senders' ledgers record as committed by the broker.
    func committedCount(_ cluster: Cluster) throws -> Int {
        var total = 0
        for sender in Self.senders where FileManager.default.fileExists(atPath: cluster.ledgerPath(sender)) {
            total += try cluster.readLedger(sender) { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox WHERE kind = 'refer' AND committed_at IS NOT NULL") ?? 0
            }
        }
        return total
    }
}

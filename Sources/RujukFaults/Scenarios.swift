import Foundation
import GRDB
import RujukCore

/// The fault scenarios of `make faults`, each on a cluster of its own.
enum Scenarios {
    static let all: [(name: String, run: @Sendable (ScenarioContext) async throws -> ScenarioResult)] = [
        ("broker-sigkill", brokerKills),
        ("recipient-crash-before-receipt", recipientCrashes),
        ("sender-crash-before-commit", senderCrashes),
        ("pause-and-link-cut", pauseAndLinkCut),
        ("netns-link-cut", namespaceLinkCut),
        ("restart-with-backlog", restartWithBacklog),
        ("disk-full", diskFull),
        ("corrupt-store", corruptStore),
    ]

    /// SIGKILL the broker at random moments while the senders submit, and start it again at once.
    static func brokerKills(_ context: ScenarioContext) async throws -> ScenarioResult {
        let cluster = try await context.makeCluster("broker-sigkill")
        defer { cluster.stopAll(); cluster.agencySystem.stop() }
        try await context.startAll(cluster)
        let load = LoadGenerator(cluster: cluster)
        let total = context.scale.referrals, kills = context.scale.brokerKills
        let submitting = Task { await load.run(count: total) }
        for kill in 1...kills {
            // Spread the kills over the load: the k-th once k/(kills+1) of it is acknowledged,
            // then a random moment within the next 300 ms.
            let mark = total * kill / (kills + 1)
            try await waitFor("\(mark) acknowledged", timeout: 600) { load.acknowledged >= mark }
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...300)))
            cluster.broker.signal(SIGKILL)
            context.log("    kill \(kill)/\(kills) at \(load.acknowledged) acknowledged, \(try context.committedCount(cluster)) committed")
            try await cluster.startBroker()
        }
        await submitting.value
        let verdict = try await context.settle(cluster, load)
        return ScenarioResult(name: "broker-sigkill", verdict: verdict, checks: [("broker killed \(kills) times during the load", cluster.broker.starts == kills + 1)])
    }

    /// The recipient's adapter dies (SIGKILL) right after its ledger committed a batch of
    /// deliveries and before the RECEIPT left, again and again.
    static func recipientCrashes(_ context: ScenarioContext) async throws -> ScenarioResult {
        try await crashes(context, name: "recipient-crash-before-receipt", agency: "rsud-embung-fatimah", points: [.deliveryStored])
    }

    /// A sender's adapter dies (SIGKILL) after sending from its outbox and before the COMMIT is
    /// recorded — half the time before the COMMIT arrives, half right after it arrives.
    static func senderCrashes(_ context: ScenarioContext) async throws -> ScenarioResult {
        try await crashes(context, name: "sender-crash-before-commit", agency: "polda-kepri", points: [.outboxSent, .commitReceived])
    }

    private static func crashes(_ context: ScenarioContext, name: String, agency: String, points: [FaultPoint]) async throws -> ScenarioResult {
        let cluster = try await context.makeCluster(name)
        defer { cluster.stopAll(); cluster.agencySystem.stop() }
        try await context.startAll(cluster, except: [agency])
        let child = cluster.adapter(agency)
        let load = LoadGenerator(cluster: cluster)
        let total = context.scale.referrals / 2
        // The n-th pass of the point, n at random: spread over the load rather than all early.
        let spread = max(40, context.scale.referrals / 100)
        func arm(_ crash: Int) -> String { "\(points[crash % points.count].rawValue):\(Int.random(in: 1...spread))" }
        // An adapter armed to crash may reach its point while it starts (at `outbox-sent`, say,
        // resending what its last run left in flight) before its API answers: that is the crash
        // it was armed for, counted when the loop below sees it exit.
        func start(crashAt: String?) async throws {
            do {
                try await cluster.startAdapter(agency, crashAt: crashAt)
            } catch where crashAt != nil && child.diedOfSIGKILL {
                context.log("    \(agency) reached its crash point while starting")
            }
        }
        try await start(crashAt: arm(0))
        let loadDone = Locked(false)
        let submitting = Task {
            await load.run(count: total, concurrency: 8)
            loadDone.withLock { $0 = true }
        }
        var crashed = 0, extra = 0
        while crashed < context.scale.crashes {
            // Dies by itself at the armed point; started again with the next one armed.
            if await child.waitForExit(timeout: 2) != nil {
                crashed += 1
                context.log("    \(agency) crashed \(crashed)/\(context.scale.crashes) at \(load.acknowledged) acknowledged")
                try await start(crashAt: crashed < context.scale.crashes ? arm(crashed) : nil)
            } else if loadDone.current {
                // The load ended before the point's n-th pass: more traffic through it.
                extra += 1
                guard extra <= 100 else { throw FaultError("\(agency) did not reach its crash point: \(child.logTail())") }
                await load.run(count: 100, concurrency: 8)
            }
        }
        await submitting.value
        let verdict = try await context.settle(cluster, load)
        return ScenarioResult(name: name, verdict: verdict, checks: [("\(agency) died at its crash point \(crashed) times", crashed == context.scale.crashes)])
    }

    /// SIGSTOP a recipient for longer than the heartbeat timeout under load, then SIGCONT; then
    /// cut the TCP link between it and the broker, and restore it.
    static func pauseAndLinkCut(_ context: ScenarioContext) async throws -> ScenarioResult {
        var proxy: TCPProxy?
        let cluster = try await context.makeCluster("pause-and-link-cut") { brokerPort in
            let made = try TCPProxy(target: brokerPort)
            proxy = made
            return "tcp://127.0.0.1:\(made.port)"
        }
        defer { cluster.stopAll(); cluster.agencySystem.stop() }
        try await context.startAll(cluster)
        let recipient = cluster.adapter("rsud-embung-fatimah")
        let load = LoadGenerator(cluster: cluster)
        let total = context.scale.referrals / 2
        let submitting = Task { await load.run(count: total, concurrency: 8) }
        var checks: [(String, Bool)] = []

        try await waitFor("a quarter acknowledged", timeout: 600) { load.acknowledged >= total / 4 }
        let timeouts = cluster.broker.logCount("reason=heartbeat timeout")
        recipient.signal(SIGSTOP)
        // Three heartbeats (300 ms) make the broker drop the session; stay stopped well past it.
        try await waitFor("the broker to drop the stopped recipient", timeout: 30) {
            cluster.broker.logCount("reason=heartbeat timeout") > timeouts
        }
        try await Task.sleep(for: .seconds(1))
        recipient.signal(SIGCONT)
        context.log("    recipient stopped and continued at \(load.acknowledged) acknowledged")
        try await cluster.waitConnected("rsud-embung-fatimah")
        checks.append(("the recipient reconnected after SIGCONT", true))

        try await waitFor("half acknowledged", timeout: 600) { load.acknowledged >= total / 2 }
        proxy!.cut()
        context.log("    link cut at \(load.acknowledged) acknowledged")
        try await Task.sleep(for: .seconds(2))
        try proxy!.restore()
        context.log("    link restored")
        await submitting.value
        let verdict = try await context.settle(cluster, load)
        return ScenarioResult(name: "pause-and-link-cut", verdict: verdict, checks: checks)
    }

    /// A recipient in a network namespace of its own, its veth link set down under load for
    /// longer than the heartbeat timeout (packets vanish, no reset), then up again.
    static func namespaceLinkCut(_ context: ScenarioContext) async throws -> ScenarioResult {
        guard NetworkNamespace.available else {
            return ScenarioResult(name: "netns-link-cut", skipped: "needs root and ip(8) for a network namespace; pause-and-link-cut cuts the link with a proxy instead")
        }
        let agency = "rsud-embung-fatimah"
        let namespace = try NetworkNamespace(agency: agency)
        defer { namespace.destroy() }
        let cluster = try await context.makeCluster("netns-link-cut", agencySystemHost: namespace.hostAddress, isolated: namespace)
        defer { cluster.stopAll(); cluster.agencySystem.stop() }
        try await context.startAll(cluster)
        let load = LoadGenerator(cluster: cluster)
        let total = context.scale.referrals / 2
        let submitting = Task { await load.run(count: total, concurrency: 8) }
        var checks: [(String, Bool)] = []
        for cut in 1...2 {
            try await waitFor("\(cut)/3 acknowledged", timeout: 600) { load.acknowledged >= total * cut / 3 }
            // The broker's "session opened" lines for the agency: its next session, after the
            // cut, is a new one. (The adapter's own /health may still say "ready" right after
            // the link comes back, before its silence timer has noticed the cut, so waiting on
            // it alone let the next cut begin with no session at the broker to time out.)
            let opened = "agency.id=\(agency) credit="
            let sessionsBefore = cluster.broker.logCount(opened)
            try namespace.cut()
            context.log("    link down at \(load.acknowledged) acknowledged")
            let before = cluster.broker.logCount("reason=heartbeat timeout")
            let dropped = await eventually(timeout: 30) { cluster.broker.logCount("reason=heartbeat timeout") > before }
            checks.append(("cut \(cut): the broker notices the silent link by heartbeat and drops the session", dropped))
            try namespace.restore()
            context.log("    link up")
            try await waitFor("a new session of \(agency) at the broker", timeout: 60) { cluster.broker.logCount(opened) > sessionsBefore }
            try await cluster.waitConnected(agency)
        }
        await submitting.value
        let verdict = try await context.settle(cluster, load)
        return ScenarioResult(name: "netns-link-cut", verdict: verdict, checks: checks)
    }

    /// A backlog for an offline agency, a broker SIGKILL and restart with it stored, then the
    /// agency connects and the backlog drains.
    static func restartWithBacklog(_ context: ScenarioContext) async throws -> ScenarioResult {
        let cluster = try await context.makeCluster("restart-with-backlog")
        defer { cluster.stopAll(); cluster.agencySystem.stop() }
        let offline = "uptd-ppa-batam"
        try await context.startAll(cluster, except: [offline])
        let load = LoadGenerator(cluster: cluster)
        let total = context.scale.backlog
        let queueing = Date()
        let cpuBeforeQueue = cluster.broker.cpuSeconds
        await load.run(count: total, concurrency: 16, routes: Route.standard.filter { $0.to == offline })
        try await waitFor("the backlog committed at the broker", timeout: 900) { try context.committedCount(cluster) >= load.acknowledged }
        let storeCPU = (cluster.broker.cpuSeconds - cpuBeforeQueue) / Double(max(1, load.acknowledged))
        let rssQueued = cluster.broker.residentMegabytes
        context.log("    \(load.acknowledged) queued for \(offline) in \(String(format: "%.0f", Date().timeIntervalSince(queueing))) s; broker CPU \(Int(storeCPU * 1e6)) µs per referral stored")

        cluster.broker.signal(SIGKILL)
        let restart = Date()
        try await cluster.startBroker()
        let restartSeconds = Date().timeIntervalSince(restart)
        // Accepting traffic: a new referral committed after the restart.
        let backlog = load.acknowledged
        await load.run(count: 1, concurrency: 1, routes: [Route.standard[0]])
        let probeID = load.submissions.last?.id ?? ""
        try await waitFor("a new referral committed after the restart", timeout: 60) {
            try cluster.readLedger("polda-kepri") { db in
                try Bool.fetchOne(db, sql: "SELECT committed_at IS NOT NULL FROM outbox WHERE referral_id = ? AND kind = 'refer'", arguments: [probeID]) ?? false
            }
        }
        let acceptingSeconds = Date().timeIntervalSince(restart)
        context.log("    broker restarted: status API after \(String(format: "%.2f", restartSeconds)) s, a new referral committed after \(String(format: "%.2f", acceptingSeconds)) s")

        let rssRestarted = cluster.broker.residentMegabytes
        // The mailbox goes out in order and the ledger stores it in order, so the drain is done
        // when its last delivery is in the ledger: a look-up by key every 20 ms, where counting
        // the ledger's rows that often would take a good part of a core from the drain itself.
        let last = try readDatabase(cluster.brokerStorePath) { db in
            try String.fetchOne(db, sql: "SELECT message_id FROM delivery WHERE agency = ? ORDER BY seq DESC LIMIT 1", arguments: [offline])
        } ?? ""
        let cpuBeforeDrain = cluster.broker.cpuSeconds
        // Every party's CPU over the drain, to say where its time goes: the senders' adapters
        // store the `received` events the drain makes, and every adapter posts webhooks.
        let senderCPUBefore = ScenarioContext.senders.map { cluster.adapter($0).cpuSeconds }
        let harnessCPUBefore = ChildProcess.ownCPUSeconds
        let connect = Date()
        try await cluster.startAdapter(offline)
        try await waitFor("the backlog's last referral in \(offline)'s ledger", timeout: 900) {
            try cluster.readLedger(offline) { db in try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM referral WHERE id = ?)", arguments: [last]) ?? false }
        }
        let drainSeconds = Date().timeIntervalSince(connect)
        let drained = try cluster.readLedger(offline) { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM referral WHERE direction = 'inbound'") ?? 0 }
        guard drained >= backlog else {
            throw FaultError("the backlog's last referral reached \(offline)'s ledger with \(drained) of \(backlog) before it: out of order")
        }
        let drainCPU = (cluster.broker.cpuSeconds - cpuBeforeDrain) / Double(max(1, backlog))
        let recipientCPU = cluster.adapter(offline).cpuSeconds / Double(max(1, backlog))
        let sendersCPU = zip(ScenarioContext.senders, senderCPUBefore).map { cluster.adapter($0).cpuSeconds - $1 }.reduce(0, +) / Double(max(1, backlog))
        let harnessCPU = (ChildProcess.ownCPUSeconds - harnessCPUBefore) / Double(max(1, backlog))
        let rssDrained = cluster.broker.residentMegabytes
        context.log("    backlog of \(backlog) drained into the ledger in \(String(format: "%.1f", drainSeconds)) s")
        let verdict = try await context.settle(cluster, load, timeout: 1800)
        return ScenarioResult(name: "restart-with-backlog", verdict: verdict, figures: [
            ("broker restart with \(total) stored: status API up", String(format: "%.2f s", restartSeconds)),
            ("broker restart with \(total) stored: new referral committed", String(format: "%.2f s", acceptingSeconds)),
            ("backlog of \(total) drained into the recipient's ledger", String(format: "%.1f s", drainSeconds)),
            ("broker CPU per referral: stored (REFER to COMMIT)", String(format: "%.0f µs", storeCPU * 1e6)),
            ("broker CPU per referral: delivered and receipted", String(format: "%.0f µs", drainCPU * 1e6)),
            ("CPU per referral over the drain: recipient's adapter (since its start) / senders' adapters / this harness",
             String(format: "%.0f / %.0f / %.0f µs", recipientCPU * 1e6, sendersCPU * 1e6, harnessCPU * 1e6)),
            ("broker resident memory: with the backlog queued / after the restart / after the drain",
             String(format: "%.0f / %.0f / %.0f MB", rssQueued, rssRestarted, rssDrained)),
        ])
    }
}

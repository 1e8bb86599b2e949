import Foundation
import GRDB

extension Scenarios {
    /// The broker's disk fills up under load: it must refuse with a clear error and stay up,
    /// and carry on by itself when space returns, without losing what it had accepted.
    static func diskFull(_ context: ScenarioContext) async throws -> ScenarioResult {
        guard getuid() == 0 else {
            return ScenarioResult(name: "disk-full", skipped: "needs root to mount a small tmpfs for the broker's data")
        }
        let mountPoint = context.directory.appendingPathComponent("disk-full-mount")
        try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
        try run("/bin/mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", mountPoint.path)
        defer { try? run("/bin/umount", "-l", mountPoint.path) }
        let cluster = try await context.makeCluster("disk-full", brokerData: mountPoint.appendingPathComponent("broker"))
        defer { cluster.stopAll(); cluster.agencySystem.stop() }
        try await context.startAll(cluster)
        let load = LoadGenerator(cluster: cluster)
        let total = context.scale.referrals / 2
        await load.run(count: total / 4, concurrency: 8)

        // Leave the filesystem about 1 MB, then go on submitting.
        let filler = mountPoint.appendingPathComponent("filler")
        var stats = statvfs()
        statvfs(mountPoint.path, &stats)
        let free = Int(stats.f_bavail) * Int(stats.f_frsize)
        FileManager.default.createFile(atPath: filler.path, contents: nil)
        let handle = try FileHandle(forWritingTo: filler)
        let chunk = Data(count: 1 << 20)
        for _ in 0..<max(0, free / (1 << 20) - 1) { try? handle.write(contentsOf: chunk) }
        // Whatever is left, to the last block.
        while (try? handle.write(contentsOf: Data(count: 4096))) != nil {}
        try handle.close()
        context.log("    broker's filesystem full at \(load.acknowledged) acknowledged")
        let submitting = Task { await load.run(count: total - total / 4, concurrency: 8) }

        var checks: [(String, Bool)] = []
        let refusing = "the store cannot write; refusing every message with storage_unavailable"
        try await waitFor("the broker to refuse for lack of space", timeout: 120) { cluster.broker.logContains(refusing) }
        checks.append(("the broker says it cannot write (\(refusing))", true))
        // The senders hear why: the reason is in the ERROR they get.
        let senderHeard = await eventually(timeout: 30) {
            ScenarioContext.senders.contains { cluster.adapter($0).logContains("database or disk is full") }
        }
        checks.append(("a sender's adapter logs the broker's reason (database or disk is full)", senderHeard))
        // Full for a while under load, and still up.
        try await Task.sleep(for: .seconds(2))
        checks.append(("the broker stays up while the disk is full", cluster.broker.isRunning))
        // 250 ms, then 500 ms, ...: not the whole window again in a tight loop.
        let backedOff = ScenarioContext.senders.contains { cluster.adapter($0).logContains("retry.ms=500") }
        checks.append(("the senders back off while the broker cannot store (250 ms, doubling)", backedOff))
        try FileManager.default.removeItem(at: filler)
        context.log("    space returned at \(load.acknowledged) acknowledged")
        try await waitFor("the broker to write again", timeout: 120) { cluster.broker.logContains("the store writes again") }
        checks.append(("the broker accepts again by itself when space returns", true))
        await submitting.value
        let verdict = try await context.settle(cluster, load)
        checks.append(("the broker was never restarted", cluster.broker.starts == 1 && cluster.broker.isRunning))
        return ScenarioResult(name: "disk-full", verdict: verdict, checks: checks)
    }

    /// The broker's store corrupt (header overwritten) or truncated at start: the broker must
    /// refuse to start, saying why, and leave the file exactly as it was; the intact file then
    /// starts and delivers everything.
    static func corruptStore(_ context: ScenarioContext) async throws -> ScenarioResult {
        let cluster = try await context.makeCluster("corrupt-store")
        defer { cluster.stopAll(); cluster.agencySystem.stop() }
        try await context.startAll(cluster, except: Set(ScenarioContext.recipients))
        let load = LoadGenerator(cluster: cluster)
        await load.run(count: min(2000, context.scale.referrals / 2), concurrency: 8)
        try await waitFor("everything committed at the broker", timeout: 120) { try context.committedCount(cluster) >= load.acknowledged }
        // The store's own page size, for a cut at a page boundary.
        let pageSize = try readDatabase(cluster.brokerStorePath) { try Int.fetchOne($0, sql: "PRAGMA page_size") } ?? 4096
        // `signal` waits for the exit; a broker that did not stop cleanly is a failure of its own.
        cluster.broker.signal(SIGTERM)
        let stopped = await cluster.broker.waitForExit(timeout: 5)
        guard stopped == 0 else {
            throw FaultError("the broker did not stop cleanly on SIGTERM (exit \(stopped.map(String.init) ?? "none"))")
        }

        let store = URL(fileURLWithPath: cluster.brokerStorePath)
        let intact = try Data(contentsOf: store)
        let files = try FileManager.default.contentsOfDirectory(atPath: cluster.brokerDataDirectory.path).sorted()
        var checks: [(String, Bool)] = []
        let damages: [(String, Data)] = [
            ("header overwritten", Data(repeating: 0x5A, count: 100) + intact.dropFirst(100)),
            ("truncated to half", intact.prefix(intact.count / 2 / pageSize * pageSize)),
            ("truncated mid-page", intact.prefix(intact.count / 2 + 1000)),
        ]
        for (damage, bytes) in damages {
            try bytes.write(to: store)
            try cluster.broker.start()
            let status = await cluster.broker.waitForExit(timeout: 30)
            if status == nil { cluster.broker.signal(SIGKILL) }
            let log = cluster.broker.logTail(600)
            let clear = log.contains(store.path) && (log.contains("not an SQLite database") || log.contains("truncated") || log.contains("malformed"))
            checks.append(("\(damage): the broker refuses to start (exit \(status.map(String.init) ?? "none"))", status != nil && status != 0))
            checks.append(("\(damage): the message names the file and the fault", clear))
            let after = try Data(contentsOf: store)
            let filesAfter = try FileManager.default.contentsOfDirectory(atPath: cluster.brokerDataDirectory.path).sorted()
            checks.append(("\(damage): the file is left byte for byte as it was", after == bytes && filesAfter == files))
            if !clear { context.log("    \(damage): \(log)") }
        }

        // The intact store back: everything it held is delivered.
        try intact.write(to: store)
        try await cluster.startBroker()
        for agency in ScenarioContext.recipients { try await cluster.startAdapter(agency) }
        let verdict = try await context.settle(cluster, load)
        return ScenarioResult(name: "corrupt-store", verdict: verdict, checks: checks)
    }
}

/// Runs a system command and fails if it fails.
func run(_ path: String, _ arguments: String...) throws {
    try run(path, arguments)
}

func run(_ path: String, _ arguments: [String], quiet: Bool = false) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if quiet { process.standardError = FileHandle.nullDevice }
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw FaultError("\(path) \(arguments.joined(separator: " ")) failed (\(process.terminationStatus))") }
}

/// Whether `condition` comes to hold within `timeout`.
func eventually(timeout: TimeInterval, _ condition: () async throws -> Bool) async -> Bool {
    (try? await waitFor("a condition", timeout: timeout, condition)) != nil
}

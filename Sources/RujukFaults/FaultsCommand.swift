import ArgumentParser
import Foundation

/// `rujuk-faults`: the fault suite. Real `rujuk` processes on loopback under load, killed,
/// stopped, cut off and starved of disk, with a checker that counts lost, duplicated,
/// unexpected and recovered referrals at the agency systems.
@main
struct FaultsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rujuk-faults",
        abstract: "Run Rujuk's fault scenarios against real processes and check that no referral is lost or duplicated.",
        discussion: """
            Scenarios: broker-sigkill, recipient-crash-before-receipt, sender-crash-before-commit, \
            pause-and-link-cut, netns-link-cut, restart-with-backlog, disk-full, corrupt-store. Each starts its own broker \
            and four adapters (two senders, two recipients whose webhooks go to a recording agency \
            system) on free loopback ports, with CurveZMQ and sealing as deployed. Exits 1 if any \
            scenario loses or duplicates a referral or fails a check.
            """)

    @Option(help: "The rujuk executable to drive.") var binary = ".build/release/rujuk"
    @Option(help: "The directory with agencies.toml.") var configDirectory = "Config"
    @Option(help: "full (the issue's counts) or ci (reduced).") var scale = "full"
    @Option(help: "Run only these scenarios (repeatable).") var scenario: [String] = []
    @Option(help: "Referrals per scenario, overriding the scale.") var referrals: Int?
    @Option(help: "The backlog restart-with-backlog queues, overriding the scale.") var backlog: Int?
    @Flag(help: "Keep the data directories and logs (printed at the end).") var keep = false

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        guard var chosen = scale == "full" ? Scale.full : scale == "ci" ? Scale.ci : nil else {
            throw ValidationError("--scale must be full or ci")
        }
        if let referrals { chosen.referrals = referrals }
        if let backlog { chosen.backlog = backlog }
        let unknown = Set(scenario).subtracting(Scenarios.all.map(\.name))
        guard unknown.isEmpty else { throw ValidationError("unknown scenario \(unknown.sorted().joined(separator: ", "))") }
        let binary = URL(fileURLWithPath: binary)
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw ValidationError("\(binary.path) is not executable: build it first") }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-faults-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let context = ScenarioContext(binary: binary, configDirectory: URL(fileURLWithPath: configDirectory), directory: directory, scale: chosen) { say($0) }
        say("rujuk faults — \(ISO8601DateFormatter().string(from: Date())), scale \(scale): \(chosen.referrals) referrals, \(chosen.brokerKills) broker kills, \(chosen.crashes) crashes, backlog \(chosen.backlog)")

        var results: [ScenarioResult] = []
        for (name, run) in Scenarios.all where scenario.isEmpty || scenario.contains(name) {
            say("\n\(name)")
            let started = Date()
            var result: ScenarioResult
            var attempt = 1
            while true {
                do {
                    result = try await run(context)
                } catch let error as FaultError where error.description.contains("Address already in use") && attempt < 3 {
                    // A free port found for the cluster was taken by another process before
                    // the broker bound it (tests run side by side): a new cluster, new ports.
                    say("  a port was taken by another process before the broker bound it; again with new ports")
                    attempt += 1
                    continue
                } catch {
                    result = ScenarioResult(name: name, checks: [("ran to the end (\(error))", false)])
                }
                break
            }
            result.seconds = Date().timeIntervalSince(started)
            report(result)
            results.append(result)
        }

        say("\nscenario | lost | duplicated | unexpected | recovered | unconfirmed | checks | time")
        for result in results {
            let v = result.verdict
            let checks = result.skipped.map { "skipped: \($0)" } ?? "\(result.checks.filter(\.1).count)/\(result.checks.count)"
            say("\(result.name) | \(v.map { "\($0.lost.count)" } ?? "-") | \(v.map { "\($0.duplicated.count)" } ?? "-") | \(v.map { "\($0.unexpected.count)" } ?? "-") | \(v.map { "\($0.recovered.count)" } ?? "-") | \(v.map { "\($0.unconfirmed.count)" } ?? "-") | \(checks) | \(String(format: "%.0f s", result.seconds))")
        }
        let failed = results.filter { !$0.passed }
        if keep { say("\ndata and logs kept in \(directory.path)") } else if failed.isEmpty { try? FileManager.default.removeItem(at: directory) } else { say("\nlogs of the failed run kept in \(directory.path)") }
        say("\nfaults: \(results.count - failed.count) passed, \(failed.count) failed")
        if !failed.isEmpty { throw ExitCode(1) }
    }

    private func report(_ result: ScenarioResult) {
        if let skipped = result.skipped { say("  skipped: \(skipped)") }
        if let verdict = result.verdict {
            say("  \(verdict.summary)")
            for (label, ids) in [("lost", verdict.lost), ("duplicated", verdict.duplicated), ("unexpected", verdict.unexpected), ("unconfirmed", verdict.unconfirmed)] where !ids.isEmpty {
                say("  \(label): \(ids.prefix(5).joined(separator: ", "))\(ids.count > 5 ? " …" : "")")
            }
        }
        for (check, held) in result.checks { say("  [\(held ? "ok" : "FAILED")] \(check)") }
        for (figure, value) in result.figures { say("  \(figure): \(value)") }
        say("  \(result.passed ? "PASSED" : "FAILED") in \(String(format: "%.0f", result.seconds)) s")
    }
}

/// Prints a line at once, even when standard output is a file (a CI log being followed).
func say(_ line: String) {
    print(line)
    fflush(nil)
}

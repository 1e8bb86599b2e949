import Foundation
import GRDB
import RujukAdapter
import RujukCore
import Testing

/// The coordinators' dashboard in a real browser: Debian's headless Chromium.
@Suite struct DashboardTests {
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The DOM after the page loaded and ran its scripts, as Chromium renders it.
    func render(_ url: String, in directory: URL) async throws -> String {
        let binary = try #require(Self.chromium, "install Debian's chromium (make test does)")
        return try await Thread.detachedResult {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                                 "--user-data-dir=\(directory.appendingPathComponent("chromium-\(UUID().uuidString)").path)",
                                 "--virtual-time-budget=3000", "--dump-dom", url]
            let out = directory.appendingPathComponent("dom-\(UUID().uuidString).html")
            try #require(FileManager.default.createFile(atPath: out.path, contents: nil))
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            return try String(contentsOf: out, encoding: .utf8)
        }.value()
    }

    @Test func theDashboardShowsAnOverdueEscalatedHandoffAndItsTimeline() async throws {
        let clock = ManualClock(Date())
        let network = try Network(clock: clock)
        let police = try network.adapter("polda-kepri")
        var request = Network.request(service: .psychosocialSupport, name: "Siti Dashboard")
        request.priority = .routine
        let late = try police.refer(request)  // the hospital's adapter is offline
        try await waitFor("committed") { try police.ledger.view(late.id)?.delivery == "sent" }
        clock.advance(by: 86400 + 2 * 3600)  // the receive clock ran out two hours ago
        #expect(police.sweepNow().escalated == 1)
        try await waitFor("the broker records the escalation") {
            try network.broker.store.pool.read { try Int.fetchOne($0, sql: "SELECT escalation_level FROM handoff WHERE id = ?", arguments: [late.id]) } == 1
        }
        let brokerTask = Task { try await network.broker.run() }
        defer { brokerTask.cancel() }
        try await waitFor("the dashboard is served") { network.broker.boundHTTPPort != nil }
        let base = "http://127.0.0.1:\(network.broker.boundHTTPPort!)"

        let page = try await render("\(base)/dashboard", in: network.directory)
        #expect(page.contains("<table id=\"overdue\""), "the overdue table is rendered")
        let row = try #require(page.components(separatedBy: "<tr").first { $0.contains(String(late.id.suffix(12))) }, "the late handoff is listed: \(page.prefix(400))")
        #expect(row.contains("polda-kepri") && row.contains("rsud-embung-fatimah") && row.contains("receive") && row.contains("level 1"))
        #expect(row.contains("2h"), "late by two hours: \(row)")
        #expect(page.contains("id=\"compliance\"") && page.contains("<svg class=\"bar\""), "the compliance chart is drawn")
        #expect(!page.contains("Siti Dashboard") && !page.contains("+62"), "no personal data")

        let timeline = try await render("\(base)/dashboard/handoffs/\(late.id)", in: network.directory)
        #expect(timeline.contains("escalated, level 1") && timeline.contains("status <b>requested</b>") && timeline.contains("deadline: received"))
        #expect(!timeline.contains("Siti Dashboard"))
    }
}

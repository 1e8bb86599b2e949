import Foundation
import GRDB
import RujukAdapter
import RujukCore
import RujukHTTP
import Testing

/// The coordinators' dashboard in a real browser: Debian's headless Chromium.
@Suite(.timeLimit(.minutes(5))) struct DashboardTests {
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

    /// Markup wrapped in characters that join it into one grapheme cluster with what is around
    /// it (a prepended U+0600 before `<`, a combining U+0301 after `>`), in every free text that
    /// reaches a page of the dashboard. Agencies send codes only (RRP/2), so what is left is the
    /// registry's own text: each agency's name, shown beside its id.
    static let payloads = [
        "x \u{600}<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">\u{301}",
        "\u{600}<script>document.body.setAttribute('data-pwned','2')</script>\u{301}",
        "\"\u{301}><svg onload=\"document.body.setAttribute('data-pwned','3')\">",
    ]

    @Test func markupInFreeTextIsShownAsTextAndNoScriptRuns() async throws {
        let network = try Network()
        network.broker.shutdown()
        let named = ["polda-kepri": Self.payloads[0], "rsud-embung-fatimah": Self.payloads[1], "lpsk": Self.payloads[2]]
        let registry = AgencyRegistry(Network.registry.agencies.map { agency in
            var agency = agency
            agency.name = named[agency.id] ?? agency.name
            return agency
        })
        try network.startBroker(registry: registry)
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        let open = try police.refer(Network.request())
        let declined = try police.refer(Network.request())
        let toLPSK = try police.refer(Network.request(to: "lpsk", service: .witnessProtection))
        try await waitFor("the hospital has them") { try [open, declined].allSatisfy { try hospital.ledger.view($0.id) != nil } }
        _ = try hospital.change(declined.id, to: .declined, reason: .noCapacity)
        let brokerTask = Task { try await network.broker.run() }
        defer { brokerTask.cancel() }
        try await waitFor("the dashboard is served") { network.broker.boundHTTPPort != nil }
        let base = "http://127.0.0.1:\(network.broker.boundHTTPPort!)"

        for path in ["/dashboard"] + [open, declined, toLPSK].map({ "/dashboard/handoffs/\($0.id)" }) {
            let (_, body, headers) = try await fetch(base + path)
            let html = String(decoding: body, as: UTF8.self)
            #expect(html.contains("&lt;img") || html.contains("&lt;script&gt;") || html.contains("&lt;svg"), "the names are there, as text: \(path)")
            #expect(!html.contains("<img") && !html.contains("<script>document") && !html.contains("<svg onload"), "escaped in the HTML: \(path)")
            #expect(headers["content-security-policy"]?.contains("script-src 'self'") == true)
            let page = try await render(base + path, in: network.directory)
            #expect(!page.contains("data-pwned=\""), "no script ran on \(path)")
            #expect(!page.contains("<img src=\"x\""), "no element was made from the text")
        }
    }

    @Test func theEscapingWorksOnEachByteNotOnGraphemeClusters() {
        for payload in Self.payloads {
            let escaped = HTMLPage.escape(payload)
            #expect(!escaped.contains("<") && !escaped.contains(">") && !escaped.contains("\""), "\(escaped)")
        }
        #expect(HTMLPage.escape("a&b<c>d\"e'f") == "a&amp;b&lt;c&gt;d&quot;e&#39;f")
        #expect(HTMLPage.escape("Dinas Sosial — Lombok Timur") == "Dinas Sosial — Lombok Timur", "anything else as it is")
    }

    @Test func everyPageAndFileOfTheDashboardForbidsInlineScriptAndFraming() async throws {
        let network = try Network()
        let brokerTask = Task { try await network.broker.run() }
        defer { brokerTask.cancel() }
        try await waitFor("the dashboard is served") { network.broker.boundHTTPPort != nil }
        let base = "http://127.0.0.1:\(network.broker.boundHTTPPort!)"
        for path in ["/dashboard", "/dashboard?fragment=live", "/dashboard.js", "/dashboard.css"] {
            let (status, body, headers) = try await fetch(base + path)
            #expect(status == 200, "\(path)")
            let policy = try #require(headers["content-security-policy"], "\(path)")
            #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"))
            #expect(policy.contains("frame-ancestors 'none'") && headers["x-frame-options"] == "DENY")
            #expect(headers["referrer-policy"] == "no-referrer" && headers["x-content-type-options"] == "nosniff")
            let text = String(decoding: body, as: UTF8.self)
            #expect(!text.contains("<script>") && !text.contains("<style>") && !text.contains(" style=\""), "nothing inline on \(path)")
        }
    }
}

import Foundation
import GRDB
import Hummingbird
import NIOCore
import RujukCore
import RujukHTTP

/// The coordinators' dashboard, served by the broker: server-rendered HTML, a few lines of
/// JavaScript that refresh the live part, no build step and nothing from the internet. Like
/// everything the broker holds, it shows the envelope of each handoff, never the person.
///
/// - `GET /dashboard` (and `/`): open handoffs by agency, overdue handoffs by lateness with their
///   escalation level, SLA compliance per agency over 7 and 30 days as a chart.
/// - `GET /dashboard/handoffs/{id}`: one handoff's timeline.
struct Dashboard: Sendable {
    let store: BrokerStore
    let registry: AgencyRegistry
    let clock: any RujukCore.Clock

    func add(to routes: Router<BasicRequestContext>) {
        routes.get("/") { _, _ in Response(status: .seeOther, headers: [.location: "/dashboard"]) }
        routes.get("/dashboard") { request, _ in
            let now = clock.now()
            let overdue = try PageRequest.parse(limit: request.query("limit"), cursor: request.query("cursor"),
                                                defaultLimit: Self.overduePage, maximum: StatusAPI.maximumPage)
            let data = try await store.pool.read { db in try DashboardData(db, now: now, overdue: overdue) }
            let live = render(data, now: now, query: request.uri.query)
            return HTMLPage.response(request.query("fragment") == "live" ? live : page(title: "Rujuk — coordinators' dashboard", script: true, body: """
                <header><h1>Rujuk <span>coordinators' dashboard</span></h1>
                <p class="meta">Envelope only: agencies, services, deadlines and status — never the person. Refreshes every 5 s.</p></header>
                <main id="live">\(live)</main>
                """))
        }
        routes.get("/dashboard.js") { _, _ in HTMLPage.response(Self.script, contentType: "text/javascript; charset=utf-8") }
        routes.get("/dashboard.css") { _, _ in HTMLPage.response(Self.style, contentType: "text/css; charset=utf-8") }
        routes.get("/dashboard/handoffs/{id}") { _, context in
            let id = try context.parameters.require("id")
            let now = clock.now()
            guard let timeline = try await store.pool.read({ db in try Timeline(db, id: id, now: now) }) else {
                throw RujukError(.notFound, "no handoff \(id)")
            }
            return HTMLPage.response(page(title: "Handoff \(id.suffix(12))", body: renderTimeline(timeline, now: now)))
        }
    }

    // MARK: - Rendering

    /// Overdue handoffs on one page of the dashboard, most late first (`?limit=` up to
    /// `StatusAPI.maximumPage`; `?cursor=` for the next page).
    static let overduePage = 50

    private func name(_ agency: String) -> String { registry[agency]?.name ?? agency }

    private func agencyCell(_ agency: String) -> String {
        "<span class=\"agency\" title=\"\(escape(name(agency)))\">\(escape(agency))</span>"
    }

    private func render(_ data: DashboardData, now: Date, query: String?) -> String {
        var out = "<p class=\"meta\">As of \(Timestamp.format(now)) — \(data.open.values.reduce(0) { $0 + $1.sent }) open handoffs, \(data.overdueTotal) overdue.</p>"

        out += "<section><h2>Overdue handoffs, most late first</h2>"
        if data.overdue.isEmpty {
            out += "<p class=\"empty\">None.</p>"
        } else {
            out += "<table id=\"overdue\"><thead><tr><th>Handoff</th><th>From</th><th>To</th><th>Service</th><th>Priority</th><th>Status</th><th>Clock run out</th><th>Late by</th><th>Escalation</th></tr></thead><tbody>"
            for row in data.overdue {
                out += """
                    <tr class="overdue level\(row.level)"><td><a href="/dashboard/handoffs/\(escape(row.id))">\(escape(String(row.id.suffix(12))))</a></td>\
                    <td>\(agencyCell(row.from))</td><td>\(agencyCell(row.to))</td><td>\(escape(row.service))</td><td>\(escape(row.priority))</td>\
                    <td>\(escape(row.status))</td><td>\(row.breach.rawValue)</td><td>\(Duration.format(row.lateBy))</td>\
                    <td>\(row.level == 0 ? "—" : "level \(row.level)")\(row.override ? " <span class=\"override\" title=\"referred without consent\">consent overridden</span>" : "")</td></tr>
                    """
            }
            out += "</tbody></table>"
        }
        let limit = data.overdueLimit == Self.overduePage ? "" : "limit=\(data.overdueLimit)&"
        var links: [String] = []
        if (query ?? "").contains("cursor=") { links.append("<a href=\"/dashboard?\(limit)\">first page</a>") }
        if let next = data.overdueNext { links.append("<a id=\"overdue-next\" href=\"/dashboard?\(limit)cursor=\(escape(next.token))\">next page</a>") }
        if !links.isEmpty { out += "<p class=\"pages\">\(links.joined(separator: " · "))</p>" }
        out += "</section>"

        out += "<section><h2>Open handoffs by agency</h2><table id=\"open\"><thead><tr><th>Agency</th><th>Sent, open</th><th>To serve, open</th><th>Overdue (to serve)</th></tr></thead><tbody>"
        for agency in data.open.keys.sorted() {
            let counts = data.open[agency]!
            out += "<tr><td>\(agencyCell(agency)) <small>\(escape(name(agency)))</small></td><td>\(counts.sent)</td><td>\(counts.toServe)</td><td class=\"\(counts.overdue > 0 ? "bad" : "")\">\(counts.overdue)</td></tr>"
        }
        if data.open.isEmpty { out += "<tr><td colspan=\"4\" class=\"empty\">No open handoffs.</td></tr>" }
        out += "</tbody></table></section>"

        out += "<section><h2>Consent overrides by sending agency</h2><p class=\"meta\">Referrals made without the person's consent, on the emergency or child-protection ground the law allows. Each is flagged on the monitor feed; the justification is sealed for the recipient and not shown here.</p>"
        out += "<table id=\"overrides\"><thead><tr><th>Agency</th><th>Last 30 days</th><th>Emergency</th><th>Child protection</th><th>All time</th></tr></thead><tbody>"
        for agency in data.overrides.keys.sorted() {
            let counts = data.overrides[agency]!
            out += "<tr><td>\(agencyCell(agency))</td><td>\(counts.last30)</td><td>\(counts.emergency)</td><td>\(counts.childProtection)</td><td>\(counts.total)</td></tr>"
        }
        if data.overrides.isEmpty { out += "<tr><td colspan=\"5\" class=\"empty\">No overrides.</td></tr>" }
        out += "</tbody></table></section>"

        out += "<section><h2>SLA compliance of recipients</h2><p class=\"meta\">Share of referrals received (stored by the recipient's adapter) and answered (accepted or declined) before their deadline, and the median time to answer, for referrals created in the last 7 and 30 days. Referrals still within their deadline are not counted yet.</p>"
        out += "<table id=\"compliance\"><thead><tr><th>Agency</th><th>Window</th><th>Referrals</th><th>Received in time</th><th>Answered in time</th><th>Median time to answer</th></tr></thead><tbody>"
        for agency in Set(data.compliance7.keys).union(data.compliance30.keys).sorted() {
            for (window, stats) in [("7 days", data.compliance7[agency]), ("30 days", data.compliance30[agency])] {
                guard let stats else { continue }
                out += "<tr><td>\(agencyCell(agency))</td><td>\(window)</td><td>\(stats.total)</td><td>\(bar(stats.receivedShare))</td><td>\(bar(stats.answeredShare))</td><td>\(stats.medianAnswer.map(Duration.format) ?? "—")</td></tr>"
            }
        }
        if data.compliance30.isEmpty { out += "<tr><td colspan=\"6\" class=\"empty\">No referrals in the last 30 days.</td></tr>" }
        out += "</tbody></table></section>"
        return out
    }

    /// A share as a small inline SVG bar with its percentage: no chart library needed.
    private func bar(_ share: Double?) -> String {
        guard let share else { return "<span class=\"empty\">—</span>" }
        let width = Int((share * 120).rounded())
        let tone = share >= 0.9 ? "good" : share >= 0.7 ? "fair" : "bad"
        return """
            <svg class="bar" width="124" height="14" role="img" aria-label="\(Int((share * 100).rounded()))%"><rect x="0" y="1" width="120" height="12" class="track"/>\
            <rect x="0" y="1" width="\(width)" height="12" class="\(tone)"/></svg> \(Int((share * 100).rounded()))%
            """
    }

    private func renderTimeline(_ timeline: Timeline, now: Date) -> String {
        let h = timeline.handoff
        var out = "<header><h1><a href=\"/dashboard\">Rujuk</a> <span>handoff \(escape(h.id))</span></h1>"
        out += "<p class=\"meta\">\(agencyCell(h.from)) → \(agencyCell(h.to)) · \(escape(h.service.rawValue)) · \(escape(h.priority.rawValue)) · \(escape(h.location.province)) · case \(escape(h.caseRef)) · status <b>\(escape(h.status.rawValue))</b>"
        if let overdue = h.overdue { out += " · <span class=\"bad\">overdue: \(overdue.rawValue)</span>" }
        if timeline.escalationLevel > 0 { out += " · <span class=\"bad\">escalation level \(timeline.escalationLevel)</span>" }
        out += "</p></header><main><table id=\"timeline\"><thead><tr><th>When</th><th>What</th><th>By</th></tr></thead><tbody>"
        var entries: [(Date, String, String)] = timeline.events.map { ($0.at, "status <b>\(escape($0.status.rawValue))</b>" + (($0.reason?.rawValue ?? $0.outcome?.rawValue).map { " — \(escape($0))" } ?? ""), $0.by) }
        entries += timeline.escalations.map { escalation in
            let what = escalation.notice == .breach
                ? "<span class=\"bad\">escalated, level \(escalation.level)</span>: \(escalation.clock.rawValue) clock ran out; told \(escalation.targets.map(escape).joined(separator: ", "))"
                : "escalation resolved (\(escalation.clock.rawValue) clock)"
            return (escalation.at, what, escalation.from)
        }
        entries += [(h.dueReceive, "deadline: received", ""), (h.dueRespond, "deadline: answered", ""), (h.dueComplete, "deadline: completed", "")]
            .map { ($0.0, "<i>\($0.1)</i>" + ($0.0 < now ? "" : " (ahead)"), $0.2) }
        for (at, what, by) in entries.sorted(by: { $0.0 < $1.0 }) {
            out += "<tr><td>\(Timestamp.format(at))</td><td>\(what)</td><td>\(by.isEmpty ? "" : agencyCell(by))</td></tr>"
        }
        out += "</tbody></table></main>"
        return out
    }

    private func page(title: String, script: Bool = false, body: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        <link rel="stylesheet" href="/dashboard.css">\(script ? "\n<script src=\"/dashboard.js\" defer></script>" : "")
        </head><body>
        \(body)
        </body></html>
        """
    }

    /// Re-renders the live part from the server every 5 seconds, on the page the reader is on;
    /// a file of its own, since the Content-Security-Policy allows no inline script.
    static let script = """
        setInterval(async () => {
          const query = new URLSearchParams(location.search);
          query.set('fragment', 'live');
          try {
            const response = await fetch('/dashboard?' + query, {cache: 'no-store'});
            if (response.ok) document.getElementById('live').innerHTML = await response.text();
          } catch (e) { /* the broker is restarting; try again next time */ }
        }, 5000);
        """

    static let style = """
        body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em 2em; color: #1d2430; background: #fafbfc; }
        h1 { font-size: 1.4em; margin: 0 } h1 span { font-weight: normal; color: #5a6472 } h1 a { color: inherit; text-decoration: none }
        h2 { font-size: 1.1em; margin: 1.4em 0 .4em }
        .meta { color: #5a6472; margin: .3em 0 } .empty { color: #8a93a0 }
        table { border-collapse: collapse; background: white; box-shadow: 0 1px 2px #0001; min-width: 50% }
        th, td { padding: .35em .7em; border-bottom: 1px solid #e6e9ee; text-align: left; white-space: nowrap }
        th { background: #f0f2f5; font-weight: 600 } small { color: #5a6472 }
        .agency { font-family: ui-monospace, monospace } .bad { color: #b3261e; font-weight: 600 }
        tr.level1 td:last-child { color: #b86e00; font-weight: 600 } tr.level2 td:last-child { color: #b3261e; font-weight: 700 }
        svg.bar { vertical-align: middle } .track { fill: #e6e9ee } .good { fill: #2e7d32 } .fair { fill: #c98a00 } .bad rect, rect.bad { fill: #b3261e }
        .override { background: #fde7e9; color: #8c1d18; border-radius: 3px; padding: 0 4px; font-size: 85%; font-weight: 600 }
        """
}

private func escape(_ text: String) -> String { HTMLPage.escape(text) }

// MARK: - Data

/// What the dashboard shows, read in one transaction.
struct DashboardData {
    struct Open { var sent = 0; var toServe = 0; var overdue = 0 }
    struct Overdue { var id: String; var from: String; var to: String; var service: String; var priority: String; var status: String; var breach: Breach; var lateBy: TimeInterval; var level: Int; var override: Bool }
    struct Overrides { var total = 0; var last30 = 0; var emergency = 0; var childProtection = 0 }
    struct Compliance { var total: Int; var receivedShare: Double?; var answeredShare: Double?; var medianAnswer: TimeInterval? }

    var open: [String: Open] = [:]
    /// One page of the overdue handoffs, most late first.
    var overdue: [Overdue] = []
    var overdueTotal = 0
    var overdueLimit: Int
    var overdueNext: PageCursor?
    /// Consent overrides per sending agency.
    var overrides: [String: Overrides] = [:]
    var compliance7: [String: Compliance] = [:]
    var compliance30: [String: Compliance] = [:]

    /// Counted in SQL, so that what is read stays bounded however many handoffs are open.
    init(_ db: Database, now: Date, overdue page: PageRequest) throws {
        let stamp = Timestamp.format(now)
        let overdueArguments: StatementArguments = [stamp, stamp, stamp]
        for row in try Row.fetchAll(db, sql: "SELECT from_agency, COUNT(*) FROM handoff WHERE status NOT IN ('declined','completed','cancelled') GROUP BY from_agency") {
            open[row[0], default: Open()].sent = row[1]
        }
        for row in try Row.fetchAll(db, sql: """
            SELECT to_agency, COUNT(*), SUM(CASE WHEN \(Breach.overdueSQL) THEN 1 ELSE 0 END)
            FROM handoff WHERE status NOT IN ('declined','completed','cancelled') GROUP BY to_agency
            """, arguments: overdueArguments) {
            open[row[0], default: Open()].toServe = row[1]
            open[row[0], default: Open()].overdue = row[2]
        }
        overdueTotal = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM handoff WHERE " + Breach.overdueSQL, arguments: overdueArguments) ?? 0
        // The clock that ran out is the latest that applies (`Breach.at`); most late first is
        // the earliest such deadline first.
        var sql = """
            SELECT * FROM (SELECT id, from_agency, to_agency, service, priority, status, due_receive, due_respond, due_complete,
                   escalation_level, consent,
                   CASE WHEN due_complete < ?1 THEN due_complete
                        WHEN status IN ('requested','received') AND due_respond < ?1 THEN due_respond
                        ELSE due_receive END AS breached_at
            FROM handoff WHERE \(Breach.overdueSQL.replacingOccurrences(of: "?", with: "?1")))
            """
        var arguments: StatementArguments = [stamp]
        if let after = page.after {
            sql += " WHERE (breached_at, id) > (?2, ?3)"
            _ = arguments.append(contentsOf: StatementArguments(try after.parts(2)))
        }
        sql += " ORDER BY breached_at, id LIMIT \(page.limit + 1)"
        let (late, next) = page.page(try Row.fetchAll(db, sql: sql, arguments: arguments)) { [$0["breached_at"], $0["id"]] }
        overdueLimit = page.limit
        overdueNext = next
        for row in late {
            guard let status = HandoffStatus(rawValue: row["status"]), let dueReceive = Timestamp.parse(row["due_receive"]),
                  let dueRespond = Timestamp.parse(row["due_respond"]), let dueComplete = Timestamp.parse(row["due_complete"]) else {
                throw RujukError(.storageUnavailable, "handoff \(row["id"] as String): a status or deadline the store cannot read")
            }
            guard let breach = Breach.at(now, status: status, dueReceive: dueReceive, dueRespond: dueRespond, dueComplete: dueComplete) else { continue }
            let deadlines = Deadlines(receive: dueReceive, respond: dueRespond, complete: dueComplete)
            overdue.append(Overdue(id: row["id"], from: row["from_agency"], to: row["to_agency"], service: row["service"], priority: row["priority"],
                                   status: status.rawValue, breach: breach, lateBy: now.timeIntervalSince(deadlines[breach]),
                                   level: row["escalation_level"], override: (row["consent"] as String) == "overridden"))
        }
        let overrideSince = Timestamp.format(now - 30 * 86400)
        for row in try Row.fetchAll(db, sql: """
            SELECT from_agency, COUNT(*), SUM(created_at >= ?), SUM(consent_ground = 'emergency'), SUM(consent_ground = 'child_protection')
            FROM handoff WHERE consent = 'overridden' GROUP BY from_agency
            """, arguments: [overrideSince]) {
            overrides[row[0]] = Overrides(total: row[1], last30: row[2] ?? 0, emergency: row[3] ?? 0, childProtection: row[4] ?? 0)
        }
        let since30 = Timestamp.format(now - 30 * 86400)
        let rows = try Row.fetchAll(db, sql: """
            SELECT h.to_agency, h.created_at, h.due_receive, h.due_respond,
                   (SELECT MIN(e.at) FROM handoff_event e WHERE e.referral_id = h.id AND e.status = 'received') AS received_at,
                   (SELECT MIN(e.at) FROM handoff_event e WHERE e.referral_id = h.id AND e.status IN ('accepted', 'declined')) AS answered_at
            FROM handoff h WHERE h.created_at >= ?
            """, arguments: [since30])
        for (days, target) in [(7.0, \DashboardData.compliance7), (30.0, \DashboardData.compliance30)] {
            var byAgency: [String: [Row]] = [:]
            let from = now - days * 86400
            for row in rows where (Timestamp.parse(row["created_at"]) ?? .distantPast) >= from {
                byAgency[row["to_agency"], default: []].append(row)
            }
            self[keyPath: target] = byAgency.mapValues { Self.compliance($0, now: now) }
        }
    }

    /// Shares over the referrals whose outcome is known: received (or not, once its deadline
    /// passed) and answered (or not, once its deadline passed).
    static func compliance(_ rows: [Row], now: Date) -> Compliance {
        var receivedKnown = 0, receivedInTime = 0, answeredKnown = 0, answeredInTime = 0
        var answerTimes: [TimeInterval] = []
        for row in rows {
            let created = Timestamp.parse(row["created_at"]) ?? now
            let dueReceive = Timestamp.parse(row["due_receive"]) ?? now, dueRespond = Timestamp.parse(row["due_respond"]) ?? now
            let receivedAt = (row["received_at"] as String?).flatMap(Timestamp.parse)
            let answeredAt = (row["answered_at"] as String?).flatMap(Timestamp.parse)
            if let receivedAt { receivedKnown += 1; if receivedAt <= dueReceive { receivedInTime += 1 } } else if now > dueReceive { receivedKnown += 1 }
            if let answeredAt {
                answeredKnown += 1
                if answeredAt <= dueRespond { answeredInTime += 1 }
                answerTimes.append(answeredAt.timeIntervalSince(created))
            } else if now > dueRespond { answeredKnown += 1 }
        }
        answerTimes.sort()
        return Compliance(
            total: rows.count,
            receivedShare: receivedKnown == 0 ? nil : Double(receivedInTime) / Double(receivedKnown),
            answeredShare: answeredKnown == 0 ? nil : Double(answeredInTime) / Double(answeredKnown),
            medianAnswer: answerTimes.isEmpty ? nil : answerTimes[answerTimes.count / 2])
    }
}

/// One handoff, its history and its escalations.
struct Timeline {
    var handoff: HandoffView
    var events: [HandoffEvent]
    var escalations: [Escalation]
    var escalationLevel: Int

    init?(_ db: Database, id: String, now: Date) throws {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM handoff WHERE id = ?", arguments: [id]) else { return nil }
        handoff = StatusAPI.view(row, now: now)
        escalationLevel = row["escalation_level"]
        events = try Row.fetchAll(db, sql: "SELECT * FROM handoff_event WHERE referral_id = ? ORDER BY seq", arguments: [id]).map(BrokerStore.event)
        escalations = try Data.fetchAll(db, sql: "SELECT m.payload FROM escalation x JOIN message m ON m.id = x.id WHERE x.referral_id = ? ORDER BY x.recorded_at", arguments: [id])
            .compactMap { try? JSONCoding.decode(Escalation.self, from: [UInt8]($0), what: "store") }
    }
}

import Foundation
import GRDB
import Hummingbird
import RujukCore
import RujukHTTP

/// The broker's HTTP status API. It reads the store; it never writes. `/api/…` needs the bearer
/// token of a coordinators' system (`[broker] api_tokens`); `/health` and the dashboard do not.
///
/// - `GET /health`
/// - `GET /api/handoffs?agency=&status=&service=&overdue=true&limit=&cursor=`: a page, newest first
/// - `GET /api/handoffs/{id}` with the full history
/// - `GET /api/feed?after=&topic=&limit=`: the monitor feed's events, for re-sync
struct StatusAPI: Sendable {
    let store: BrokerStore
    let router: RouterLoop
    let clock: any RujukCore.Clock
    let durability: Durability
    let registry: AgencyRegistry
    /// The coordinators' systems' tokens, by client name; replaced on reload.
    let tokens: Locked<[String: String]>

    func routes(hosts: HostAllowList) -> Router<BasicRequestContext> {
        let routes = Router()
        routes.add(middleware: HostCheckMiddleware(hosts))
        routes.add(middleware: ErrorMiddleware())
        routes.get("/health") { _, _ in
            let snapshot = router.snapshot
            struct Health: Encodable {
                var status = "ok"
                var synchronous: Durability
                var connected: [String]
                var committed: Int
                var delivered: Int
                var refused: Int
                /// The audit chain's newest record and hash: record them elsewhere now and then,
                /// so that `rujuk audit verify` can be checked against them later.
                var auditRecords: Int64
                var auditHead: String
                /// Refusals that point at an attack since start, by kind (`SecurityEventKind`).
                var securityEvents: [String: Int]

                enum CodingKeys: String, CodingKey {
                    case status, synchronous, connected, committed, delivered, refused
                    case auditRecords = "audit_records"
                    case auditHead = "audit_head"
                    case securityEvents = "security_events"
                }
            }
            let (records, head) = try await store.pool.read { db in
                let newest = try AuditChain.newest(db)
                return (newest.records, AuditChain.hex(newest.hash))
            }
            return JSONResponse.make(Health(synchronous: durability, connected: snapshot.connected, committed: snapshot.committed, delivered: snapshot.delivered,
                                            refused: snapshot.refused, auditRecords: records, auditHead: head,
                                            securityEvents: router.securityEvents.snapshot))
        }
        let tokens = self.tokens
        let api = routes.group("api").add(middleware: BearerTokenMiddleware { Array(tokens.current.values) })
        api.get("handoffs") { request, _ in
            try JSONResponse.make(await list(request))
        }
        Dashboard(store: store, registry: registry, clock: clock).add(to: routes)
        api.get("feed") { request, _ in
            let after = Int64(request.query("after") ?? "0") ?? -1
            guard after >= 0 else { throw RujukError(.badParameter, "'after' must be a sequence number") }
            let page = try PageRequest.parse(limit: request.query("limit"), cursor: nil, defaultLimit: 1000, maximum: Self.maximumFeedPage)
            return JSONResponse.make(try await store.feed(after: after, topic: request.query("topic") ?? "", limit: page.limit))
        }
        api.get("handoffs/{id}") { _, context in
            let id = try context.parameters.require("id")
            guard let view = try await handoff(id) else { throw RujukError(.notFound, "no handoff \(id)") }
            return JSONResponse.make(view)
        }
        return routes
    }

    /// The most handoffs one page of `/api/handoffs` holds (`?limit=`, default 200).
    public static let maximumPage = 1000
    /// The most events one page of `/api/feed` holds (`?limit=`, default 1,000).
    public static let maximumFeedPage = 10_000

    /// One page of handoffs, newest first; `?cursor=` continues after the last page.
    private func list(_ request: Request) async throws -> HandoffList {
        let page = try PageRequest.parse(limit: request.query("limit"), cursor: request.query("cursor"), defaultLimit: 200, maximum: Self.maximumPage)
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let agency = request.query("agency") {
            conditions.append("(from_agency = ? OR to_agency = ?)")
            _ = arguments.append(contentsOf: [agency, agency])
        }
        if let status = request.query("status") {
            guard HandoffStatus(rawValue: status) != nil else { throw RujukError(.schemaViolation, "unknown status '\(status)'") }
            conditions.append("status = ?")
            _ = arguments.append(contentsOf: [status])
        }
        if let service = request.query("service") {
            guard Service(rawValue: service) != nil else { throw RujukError(.schemaViolation, "unknown service '\(service)'") }
            conditions.append("service = ?")
            _ = arguments.append(contentsOf: [service])
        }
        let overdueOnly = request.query("overdue") == "true"
        if overdueOnly {
            let now = Timestamp.format(clock.now())
            conditions.append(Breach.overdueSQL)
            _ = arguments.append(contentsOf: [now, now, now])
        }
        if let after = page.after {
            conditions.append("(created_at, id) < (?, ?)")
            _ = arguments.append(contentsOf: StatementArguments(try after.parts(2)))
        }
        let sql = "SELECT * FROM handoff" + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            + " ORDER BY created_at DESC, id DESC LIMIT \(page.limit + 1)"
        let now = clock.now()
        let bound = arguments
        let rows = try await store.pool.read { db in try Row.fetchAll(db, sql: sql, arguments: bound) }
        let (items, next) = page.page(rows) { [$0["created_at"], $0["id"]] }
        return HandoffList(handoffs: items.map { Self.view($0, now: now) }, next: next?.token)
    }

    private func handoff(_ id: String) async throws -> HandoffView? {
        let now = clock.now()
        return try await store.pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM handoff WHERE id = ?", arguments: [id]) else { return nil }
            var view = Self.view(row, now: now)
            view.history = try Row.fetchAll(db, sql: "SELECT * FROM handoff_event WHERE referral_id = ? ORDER BY seq", arguments: [id]).map(BrokerStore.event)
            return view
        }
    }

    static func view(_ row: Row, now: Date) -> HandoffView {
        func date(_ column: String) -> Date { Timestamp.parse(row[column]) ?? .distantPast }
        let status = HandoffStatus(rawValue: row["status"]) ?? .requested
        return HandoffView(
            id: row["id"], caseRef: row["case_ref"], from: row["from_agency"], to: row["to_agency"],
            service: Service(rawValue: row["service"]) ?? .medicalCare, priority: Priority(rawValue: row["priority"]) ?? .routine,
            location: Location(province: row["province"], regency: (row["regency"] as String).isEmpty ? nil : row["regency"]), reason: nil, status: status,
            createdAt: date("created_at"), dueReceive: date("due_receive"), dueRespond: date("due_respond"),
            dueComplete: date("due_complete"), updatedAt: date("updated_at"),
            overdue: Breach.at(now, status: status, dueReceive: date("due_receive"), dueRespond: date("due_respond"), dueComplete: date("due_complete"))
        )
    }
}

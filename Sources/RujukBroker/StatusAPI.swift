import Foundation
import GRDB
import Hummingbird
import RujukCore
import RujukHTTP

/// The broker's HTTP status API. It reads the store; it never writes.
///
/// - `GET /health`
/// - `GET /api/handoffs?agency=&status=&service=&overdue=true&limit=`
/// - `GET /api/handoffs/{id}` with the full history
/// - `GET /api/feed?after=&topic=&limit=`: the monitor feed's events, for re-sync
struct StatusAPI: Sendable {
    let store: BrokerStore
    let router: RouterLoop
    let clock: any RujukCore.Clock
    let durability: Durability
    let registry: AgencyRegistry

    func routes() -> Router<BasicRequestContext> {
        let routes = Router()
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
                (try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'feed'") ?? 0, AuditChain.hex(try AuditChain.head(db)))
            }
            return JSONResponse.make(Health(synchronous: durability, connected: snapshot.connected, committed: snapshot.committed, delivered: snapshot.delivered,
                                            refused: snapshot.refused, auditRecords: records, auditHead: head,
                                            securityEvents: router.securityEvents.snapshot))
        }
        routes.get("/api/handoffs") { request, _ in
            try JSONResponse.make(HandoffList(handoffs: await list(request)))
        }
        Dashboard(store: store, registry: registry, clock: clock).add(to: routes)
        routes.get("/api/feed") { request, _ in
            let after = Int64(request.query("after") ?? "0") ?? -1
            guard after >= 0 else { throw RujukError(.schemaViolation, "'after' must be a sequence number") }
            let limit = min(max(Int(request.query("limit") ?? "") ?? 1000, 1), 10_000)
            return JSONResponse.make(try await store.feed(after: after, topic: request.query("topic") ?? "", limit: limit))
        }
        routes.get("/api/handoffs/{id}") { _, context in
            let id = try context.parameters.require("id")
            guard let view = try await handoff(id) else { throw RujukError(.notFound, "no handoff \(id)") }
            return JSONResponse.make(view)
        }
        return routes
    }

    private func list(_ request: Request) async throws -> [HandoffView] {
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
        let limit = min(Int(request.query("limit") ?? "") ?? 200, 5000)
        let sql = "SELECT * FROM handoff" + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")) + " ORDER BY created_at DESC LIMIT \(limit)"
        let now = clock.now()
        let bound = arguments
        return try await store.pool.read { db in
            try Row.fetchAll(db, sql: sql, arguments: bound).map { Self.view($0, now: now) }
        }
    }

    private func handoff(_ id: String) async throws -> HandoffView? {
        let now = clock.now()
        return try await store.pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM handoff WHERE id = ?", arguments: [id]) else { return nil }
            var view = Self.view(row, now: now)
            view.history = try Row.fetchAll(db, sql: "SELECT * FROM handoff_event WHERE referral_id = ? ORDER BY seq", arguments: [id]).map { event in
                HandoffEvent(
                    id: event["id"], referralId: event["referral_id"], by: event["by_agency"],
                    status: HandoffStatus(rawValue: event["status"]) ?? .requested, reason: event["reason"], outcome: event["outcome"],
                    at: Timestamp.parse(event["at"]) ?? .distantPast)
            }
            return view
        }
    }

    static func view(_ row: Row, now: Date) -> HandoffView {
        func date(_ column: String) -> Date { Timestamp.parse(row[column]) ?? .distantPast }
        let status = HandoffStatus(rawValue: row["status"]) ?? .requested
        return HandoffView(
            id: row["id"], caseRef: row["case_ref"], from: row["from_agency"], to: row["to_agency"],
            service: Service(rawValue: row["service"]) ?? .medicalCare, priority: Priority(rawValue: row["priority"]) ?? .routine,
            location: Location(province: row["province"], regency: row["regency"]), reason: nil, status: status,
            createdAt: date("created_at"), dueReceive: date("due_receive"), dueRespond: date("due_respond"),
            dueComplete: date("due_complete"), updatedAt: date("updated_at"),
            overdue: Breach.at(now, status: status, dueReceive: date("due_receive"), dueRespond: date("due_respond"), dueComplete: date("due_complete"))
        )
    }
}

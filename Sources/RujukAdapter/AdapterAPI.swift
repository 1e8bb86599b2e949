import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import RujukCore
import RujukHTTP

/// The agency system's interface to its adapter: JSON over HTTP on loopback, with a bearer
/// token, and an SSE stream of notifications.
struct AdapterAPI: Sendable {
    let adapter: Adapter

    /// The most items one page of a list holds (`?limit=`, default 200; `?cursor=` for the next).
    static let maximumPage = 1000

    func routes() -> Router<BasicRequestContext> {
        let routes = Router()
        let hosts = HostAllowList(listener: adapter.configuration.api, settings: adapter.configuration.apiListener) { [adapter] in
            adapter.boundHTTPPort
        }
        routes.add(middleware: HostCheckMiddleware(hosts))
        routes.add(middleware: ErrorMiddleware())
        routes.get("/health") { _, _ in
            return JSONResponse.make(AdapterHealth(agency: adapter.agency, broker: adapter.link.state, ledger: try adapter.ledger.summary(),
                                                   securityEvents: adapter.securityEvents.snapshot))
        }
        let api = routes.group("api").add(middleware: BearerTokenMiddleware(token: adapter.token))
        api.post("referrals") { request, _ in
            let body = try await JSONResponse.decode(ReferralRequest.self, from: request)
            return JSONResponse.make(try await adapter.submit(body), status: .created)
        }
        api.get("inbox") { request, _ in try list("inbound", request) }
        api.get("outbox") { request, _ in try list("outbound", request) }
        api.get("referrals/{id}") { _, context in
            let id = try context.parameters.require("id")
            guard let view = try adapter.ledger.view(id) else { throw RujukError(.notFound, "no referral \(id)") }
            return JSONResponse.make(view)
        }
        api.get("escalations") { request, _ in
            // Sent by this agency and told to it, oldest first; `?referral=` for one handoff.
            let page = try PageRequest.parse(limit: request.query("limit"), cursor: request.query("cursor"), defaultLimit: 200, maximum: Self.maximumPage)
            let (escalations, next) = try adapter.ledger.escalations(referralID: request.query("referral"), page: page)
            return JSONResponse.make(EscalationList(escalations: escalations, next: next?.token))
        }
        let actions: [String: HandoffStatus] = ["accept": .accepted, "decline": .declined, "start": .inProgress, "complete": .completed, "cancel": .cancelled]
        api.post("referrals/{id}/{action}") { request, context in
            let id = try context.parameters.require("id")
            let action = try context.parameters.require("action")
            guard let status = actions[action] else { throw RujukError(.notFound, "unknown action '\(action)' (accept, decline, start, complete, cancel)") }
            let change = try await JSONResponse.decode(StatusChangeRequest.self, from: request, limit: 16 * 1024)
            return JSONResponse.make(try await adapter.submitChange(id, to: status, reason: change.reason, outcome: change.outcome, note: change.note))
        }
        api.get("events") { request, _ in
            let start = Int64(request.headers[HTTPField.Name("Last-Event-ID")!] ?? request.query("after") ?? "") ?? 0
            return events(after: start)
        }
        return routes
    }

    private func list(_ direction: String, _ request: Request) throws -> Response {
        let status = try request.query("status").map { name in
            guard let status = HandoffStatus(rawValue: name) else { throw RujukError(.schemaViolation, "unknown status '\(name)'") }
            return status
        }
        let service = try request.query("service").map { name in
            guard let service = Service(rawValue: name) else { throw RujukError(.schemaViolation, "unknown service '\(name)'") }
            return service
        }
        let page = try PageRequest.parse(limit: request.query("limit"), cursor: request.query("cursor"), defaultLimit: 200, maximum: Self.maximumPage)
        return JSONResponse.make(try adapter.ledger.list(direction: direction, status: status, service: service, overdueOnly: request.query("overdue") == "true", page: page))
    }

    /// Server-sent events: every notification after `seq`, then live ones. A client that
    /// reconnects with `Last-Event-ID` resumes where it stopped, so it sees each one once.
    private func events(after seq: Int64) -> Response {
        let ledger = adapter.ledger
        let wakeups = adapter.hub.subscribe()
        let body = ResponseBody { writer in
            var last = seq
            try await writer.write(ByteBuffer(string: ": rujuk adapter events\nretry: 1000\n\n"))
            // The hub is poked on every change and every 15 s (keepalive), so this loop also
            // notices a client that went away when the write fails.
            var woken = false
            var iterator = wakeups.makeAsyncIterator()
            while true {
                let batch = try ledger.notifications(after: last)
                for (seq, payload) in batch {
                    try await writer.write(ByteBuffer(string: "id: \(seq)\nevent: notification\ndata: \(String(decoding: payload, as: UTF8.self))\n\n"))
                    last = seq
                }
                if batch.count == 500 { continue }
                if woken && batch.isEmpty { try await writer.write(ByteBuffer(string: ": keepalive\n\n")) }
                guard await iterator.next() != nil else { break }
                woken = true
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
    }
}

/// `GET /health`: who this adapter is, its link to the broker, and what its ledger holds.
public struct AdapterHealth: Codable, Sendable {
    public var status = "ok"
    public var agency: String
    public var broker: BrokerLink.State
    public var ledger: LedgerSummary
    /// Deliveries refused for reasons that point at an attack since start, by kind
    /// (`SecurityEventKind`, e.g. `seal_invalid`).
    public var securityEvents: [String: Int]

    enum CodingKeys: String, CodingKey {
        case status, agency, broker, ledger
        case securityEvents = "security_events"
    }
}

/// `GET /api/escalations`: one page, and the cursor of the next when there may be more.
public struct EscalationList: Codable, Sendable {
    public var escalations: [Escalation]
    public var next: String?
}

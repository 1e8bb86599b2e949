import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
import RujukAdapter
import RujukCore
import Testing

/// The agency system's HTTP API, over a real socket.
@Suite(.serialized, .timeLimit(.minutes(5))) struct AdapterAPITests {
    struct Client {
        let base: String
        var token = "test-token"

        func call(_ method: String, _ path: String, body: String? = nil, token: String? = nil) async throws -> (Int, [String: Any]) {
            var request = URLRequest(url: URL(string: base + path)!, timeoutInterval: 10)
            request.httpMethod = method
            request.setValue("Bearer \(token ?? self.token)", forHTTPHeaderField: "Authorization")
            if let body {
                request.httpBody = Data(body.utf8)
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            }
            let (data, response) = try await URLSession.shared.data(for: request)
            let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            return ((response as! HTTPURLResponse).statusCode, object)
        }
    }

    static func errorCode(_ object: [String: Any]) -> String? {
        (object["error"] as? [String: Any])?["code"] as? String
    }

    func running(_ network: Network, _ agency: String) async throws -> (Adapter, Client, Task<Void, any Error>) {
        let adapter = try network.adapter(agency)
        let task = Task { try await adapter.run() }
        try await waitFor("the API listens") { adapter.boundHTTPPort != nil }
        return (adapter, Client(base: "http://127.0.0.1:\(adapter.boundHTTPPort!)"), task)
    }

    @Test func createsListsShowsAndChangesReferrals() async throws {
        let network = try Network()
        let (_, police, policeTask) = try await running(network, "polda-kepri")
        let (hospital, hospitalClient, hospitalTask) = try await running(network, "rsud-embung-fatimah")
        defer { policeTask.cancel(); hospitalTask.cancel() }

        let body = String(decoding: JSONCoding.encode(Network.request()), as: UTF8.self)
        let (status, created) = try await police.call("POST", "/api/referrals", body: body)
        #expect(status == 201)
        let id = try #require(created["id"] as? String)
        #expect(created["due_respond"] is String)

        try await waitFor("the hospital has it") { try hospital.ledger.view(id) != nil }
        let (_, inbox) = try await hospitalClient.call("GET", "/api/inbox")
        #expect((inbox["handoffs"] as? [[String: Any]])?.first?["id"] as? String == id)
        #expect((inbox["handoffs"] as? [[String: Any]])?.first?["body"] == nil, "lists carry no personal data")
        let (_, shown) = try await hospitalClient.call("GET", "/api/referrals/\(id)")
        #expect(((shown["body"] as? [String: Any])?["subject"] as? [String: Any])?["name"] as? String == "Siti Contoh")

        let (accepted, view) = try await hospitalClient.call("POST", "/api/referrals/\(id)/accept", body: "{}")
        #expect(accepted == 200)
        #expect(view["status"] as? String == "accepted")
        let (again, conflict) = try await hospitalClient.call("POST", "/api/referrals/\(id)/accept", body: "{}")
        #expect(again == 409)
        #expect(Self.errorCode(conflict) == "illegal_transition")
    }

    @Test func badRequestsGet4xxWithAJSONError() async throws {
        let network = try Network()
        let (_, police, task) = try await running(network, "polda-kepri")
        defer { task.cancel() }

        let (unauthorized, body401) = try await police.call("GET", "/api/inbox", token: "wrong")
        #expect(unauthorized == 401)
        #expect(Self.errorCode(body401) == "unauthorized")

        let (notJSON, body1) = try await police.call("POST", "/api/referrals", body: "{not json")
        #expect(notJSON == 422)
        #expect(Self.errorCode(body1) == "schema_violation")

        let (missing, body2) = try await police.call("POST", "/api/referrals", body: #"{"to": "lpsk"}"#)
        #expect(missing == 422)
        #expect(Self.errorCode(body2) == "schema_violation")
        #expect(((body2["error"] as? [String: Any])?["reason"] as? String)?.hasSuffix("is required") == true)

        var request = Network.request(to: "dinas-atlantis")
        let (unknown, body3) = try await police.call("POST", "/api/referrals", body: String(decoding: JSONCoding.encode(request), as: UTF8.self))
        #expect(unknown == 422)
        #expect(Self.errorCode(body3) == "unknown_agency")

        request = Network.request(to: "rsud-embung-fatimah", service: .witnessProtection)
        let (notOffered, body4) = try await police.call("POST", "/api/referrals", body: String(decoding: JSONCoding.encode(request), as: UTF8.self))
        #expect(notOffered == 422)
        #expect(Self.errorCode(body4) == "service_not_offered")

        request = Network.request()
        request.body.consent = Consent(status: .overridden, scope: [], date: Date(), recordedBy: "x")
        let (noJustification, body5) = try await police.call("POST", "/api/referrals", body: String(decoding: JSONCoding.encode(request), as: UTF8.self))
        #expect(noJustification == 422)
        #expect(Self.errorCode(body5) == "schema_violation")

        let huge = String(repeating: "x", count: 300_000)
        let (tooLarge, body6) = try await police.call("POST", "/api/referrals", body: #"{"reason": "\#(huge)"}"#)
        #expect(tooLarge == 413)
        #expect(Self.errorCode(body6) == "too_large")

        let (notFound, body7) = try await police.call("GET", "/api/referrals/\(MessageID.make())")
        #expect(notFound == 404)
        #expect(Self.errorCode(body7) == "not_found")

        let (outbox, list) = try await police.call("GET", "/api/outbox")
        #expect(outbox == 200)
        #expect((list["handoffs"] as? [Any])?.isEmpty == true, "nothing refused was stored")
    }

    @Test func sameIDTwiceCreatesOneReferral() async throws {
        let network = try Network()
        let (_, police, task) = try await running(network, "polda-kepri")
        defer { task.cancel() }
        var request = Network.request()
        request.id = MessageID.make()
        let body = String(decoding: JSONCoding.encode(request), as: UTF8.self)
        let (first, _) = try await police.call("POST", "/api/referrals", body: body)
        let (second, _) = try await police.call("POST", "/api/referrals", body: body)
        #expect(first == 201 && second == 201)
        let (_, list) = try await police.call("GET", "/api/outbox")
        #expect((list["handoffs"] as? [Any])?.count == 1)
    }

    /// Requests that arrive together share the ledger's commits (GroupCommit); each is still
    /// answered for itself: every new referral stored and queued once, a retry sent alongside
    /// its original answered with the same referral.
    @Test func concurrentRequestsAreEachCommittedOnce() async throws {
        let network = try Network()
        let (police, client, task) = try await running(network, "polda-kepri")
        defer { task.cancel() }
        var retried = Network.request()
        retried.id = MessageID.make()
        let bodies = (0..<24).map { _ in JSONCoding.encode(Network.request()) } + Array(repeating: JSONCoding.encode(retried), count: 8)
        let answers = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for body in bodies {
                group.addTask {
                    let (status, view) = try await client.call("POST", "/api/referrals", body: String(decoding: body, as: UTF8.self))
                    return (status, view["id"] as? String)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(answers.allSatisfy { $0.0 == 201 })
        #expect(answers.filter { $0.1 == retried.id }.count == 8, "each retry answered with the referral")
        #expect(Set(answers.compactMap(\.1)).count == 25)
        let (referrals, outbox) = try await police.ledger.pool.read { db in
            (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM referral")!, try String.fetchOne(db, sql: "SELECT COUNT(DISTINCT referral_id) || '/' || COUNT(*) FROM outbox")!)
        }
        #expect(referrals == 25)
        #expect(outbox == "25/25", "one outbox entry per referral")
    }

    /// The same status change asked for at once from several connections is applied once: the
    /// others meet the changed status and are refused, whether or not they shared a commit.
    @Test func concurrentIdenticalChangesApplyOnce() async throws {
        let network = try Network()
        let (police, _, policeTask) = try await running(network, "polda-kepri")
        let (hospital, client, hospitalTask) = try await running(network, "rsud-embung-fatimah")
        defer { policeTask.cancel(); hospitalTask.cancel() }
        let sent = try police.refer(Network.request())
        try await waitFor("the hospital has it") { try hospital.ledger.view(sent.id) != nil }
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<6 { group.addTask { try await client.call("POST", "/api/referrals/\(sent.id)/accept", body: "{}").0 } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses.sorted() == [200, 409, 409, 409, 409, 409])
        let accepted = try await hospital.ledger.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM event WHERE referral_id = ? AND status = 'accepted'", arguments: [sent.id])! }
        #expect(accepted == 1)
    }
}

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RujukAdapter
import RujukCore
import Testing

/// The agency system's HTTP API, over a real socket.
@Suite(.serialized) struct AdapterAPITests {
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
}

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RujukAdapter
import RujukCore
import Testing

/// Fetches `url` (with the adapter's token when given); status, body and headers.
func fetch(_ url: String, token: String? = nil) async throws -> (status: Int, body: Data, headers: [String: String]) {
    var request = URLRequest(url: URL(string: url)!, timeoutInterval: 30)
    if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
    let (data, response) = try await URLSession.shared.data(for: request)
    let http = try #require(response as? HTTPURLResponse)
    let headers = Dictionary(uniqueKeysWithValues: http.allHeaderFields.map { ("\($0.key)".lowercased(), "\($0.value)") })
    return (http.statusCode, data, headers)
}

/// Every list an HTTP API serves is bounded and paged: a limit is a whole number up to a
/// documented maximum, anything else is refused before a row is read, and a cursor walks the
/// rest without repeating or skipping a row.
@Suite(.serialized, .timeLimit(.minutes(5))) struct ListAndPageTests {
    static let badLimits = ["-1", "0", "1001", "abc", "2.5", "99999999999999999999"]

    @Test func badLimitsAndCursorsAreRefusedWith400AndACode() async throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        let tasks = [Task { try await network.broker.run() }, Task { try await police.run() }]
        defer { tasks.forEach { $0.cancel() } }
        try await waitFor("both listen") { network.broker.boundHTTPPort != nil && police.boundHTTPPort != nil }
        let broker = "http://127.0.0.1:\(network.broker.boundHTTPPort!)"
        let adapter = "http://127.0.0.1:\(police.boundHTTPPort!)"
        var urls: [(String, String?)] = []
        for limit in Self.badLimits {
            urls += [("\(broker)/api/handoffs?limit=\(limit)", Network.statusToken), ("\(broker)/api/feed?limit=\(limit == "1001" ? "10001" : limit)&after=0", Network.statusToken),
                     ("\(broker)/dashboard?limit=\(limit)", nil), ("\(adapter)/api/inbox?limit=\(limit)", "test-token"),
                     ("\(adapter)/api/outbox?limit=\(limit)", "test-token"), ("\(adapter)/api/escalations?limit=\(limit)", "test-token")]
        }
        urls += [("\(broker)/api/handoffs?cursor=%25%25", Network.statusToken), ("\(adapter)/api/inbox?cursor=bm90LWEtY3Vyc29y", "test-token"),
                 ("\(broker)/dashboard?cursor=eA", nil), ("\(adapter)/api/escalations?cursor=eA", "test-token")]
        for (url, token) in urls {
            let (status, body, _) = try await fetch(url, token: token)
            #expect(status == 400, "\(url) → \(status)")
            let error = try? JSONCoding.decode([String: ProtocolError].self, from: Array(body), what: "error")
            #expect(error?["error"]?.code == .badParameter, "\(url): \(String(decoding: body, as: UTF8.self))")
        }
    }

    @Test func aCursorWalksEveryListOnceInOrder() async throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        let tasks = [Task { try await network.broker.run() }, Task { try await police.run() }, Task { try await hospital.run() }]
        defer { tasks.forEach { $0.cancel() } }
        var sent: [String] = []
        for _ in 0..<7 { sent.append(try police.refer(Network.request()).id) }
        try await waitFor("the hospital has all seven") { try sent.allSatisfy { try hospital.ledger.view($0) != nil } }
        try await waitFor("all listen") { [network.broker.boundHTTPPort, police.boundHTTPPort, hospital.boundHTTPPort].allSatisfy { $0 != nil } }

        func walk(_ base: String, token: String?) async throws -> [String] {
            var seen: [String] = []
            var cursor: String?
            for _ in 0..<10 {
                let url = base + "limit=3" + (cursor.map { "&cursor=\($0)" } ?? "")
                let (status, body, _) = try await fetch(url, token: token)
                #expect(status == 200, "\(url)")
                let page = try JSONCoding.decode(HandoffList.self, from: Array(body), what: "page")
                #expect(page.handoffs.count <= 3)
                seen += page.handoffs.map(\.id)
                guard let next = page.next else { return seen }
                cursor = next
            }
            Issue.record("the cursor never ended")
            return seen
        }
        /// The list in one page, to compare the walk's order with.
        func whole(_ base: String, token: String?) async throws -> [String] {
            let (_, body, _) = try await fetch(base + "limit=100", token: token)
            return try JSONCoding.decode(HandoffList.self, from: Array(body), what: "page").handoffs.map(\.id)
        }
        for (base, token) in [("http://127.0.0.1:\(network.broker.boundHTTPPort!)/api/handoffs?", Network.statusToken),
                              ("http://127.0.0.1:\(police.boundHTTPPort!)/api/outbox?", "test-token"),
                              ("http://127.0.0.1:\(hospital.boundHTTPPort!)/api/inbox?", "test-token")] {
            let pages = try await walk(base, token: token)
            #expect(Set(pages) == Set(sent) && pages.count == sent.count, "\(base): each once")
            #expect(try await pages == whole(base, token: token), "\(base): in the list's own order")
        }
    }
}

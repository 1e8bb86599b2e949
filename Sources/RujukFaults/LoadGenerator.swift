import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RujukAdapter
import RujukCore

/// One route the load uses: who refers whom for what (each allowed by the sample registry).
struct Route: Sendable {
    var from: String
    var to: String
    var service: Service

    static let standard = [
        Route(from: "polda-kepri", to: "rsud-embung-fatimah", service: .medicalCare),
        Route(from: "kjri-johor-bahru", to: "uptd-ppa-batam", service: .shelter),
        Route(from: "polda-kepri", to: "uptd-ppa-batam", service: .shelter),
        Route(from: "kjri-johor-bahru", to: "rsud-embung-fatimah", service: .medicalCare),
    ]
}

/// What the sending agency system knows of one referral it tried to create.
struct Submission: Sendable {
    enum Outcome: Sendable, Equatable {
        /// The adapter answered 201: it promised the referral is durable.
        case acknowledged
        /// The adapter answered with an error, or could not be reached: not created.
        case refused(String)
        /// The request was sent and no answer came (the adapter died meanwhile): it may or may
        /// not have been created — Jepsen's "indeterminate".
        case indeterminate
    }
    var id: String
    var route: Route
    var outcome: Outcome
}

/// The sending agency systems: POSTs referrals to the senders' adapter APIs from `concurrency`
/// workers, each with a fresh UUIDv7 id, and records every outcome.
final class LoadGenerator: @unchecked Sendable {
    let cluster: Cluster
    let routes: [Route]
    private let results = Locked<[Submission]>([])
    private let next = Locked(0)

    init(cluster: Cluster, routes: [Route] = Route.standard) {
        self.cluster = cluster
        self.routes = routes
    }

    var submissions: [Submission] { results.current }
    var acknowledged: Int { results.current.filter { $0.outcome == .acknowledged }.count }

    /// Submits `count` more referrals over `routes` (default: the generator's); returns when
    /// each has an outcome. A request the adapter could not even receive (connection refused:
    /// the adapter is down) is tried again once it is back — the referral keeps its id, so that
    /// cannot create two.
    func run(count: Int, concurrency: Int = 16, routes: [Route]? = nil) async {
        let routes = routes ?? self.routes
        let first = next.withLock { value -> Int in
            value += count
            return value - count
        }
        let claimed = Locked(0)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<min(concurrency, count) {
                group.addTask {
                    while true {
                        let index = claimed.withLock { value -> Int in
                            value += 1
                            return value - 1
                        }
                        guard index < count, !self.cluster.stopped.current else { return }
                        let outcome = await self.submit(id: MessageID.make(), number: first + index, route: routes[index % routes.count])
                        self.results.withLock { $0.append(outcome) }
                    }
                }
            }
        }
    }

    private func submit(id: String, number: Int, route: Route) async -> Submission {
        let request = ReferralRequest(
            id: id, caseRef: "FAULT-\(number)", to: route.to, service: route.service, priority: .urgent,
            reason: .medicalExamination,
            body: ReferralBody(
                subject: Subject(ageBand: "18-24", gender: "female", nationality: "ID", languages: ["id"], child: false, needs: [],
                                 name: "Fault Suite \(number)", contact: "+62 812 0000 0000"),
                consent: Consent(status: .given, scope: [.health, .shelter, .legalAid, .witnessProtection, .socialServices], date: Date(), recordedBy: "fault-suite"),
                notes: nil))
        var http = URLRequest(url: URL(string: "http://127.0.0.1:\(cluster.apiPorts[route.from]!)/api/referrals")!, timeoutInterval: 30)
        http.httpMethod = "POST"
        http.setValue("Bearer faults", forHTTPHeaderField: "Authorization")
        http.setValue("application/json", forHTTPHeaderField: "Content-Type")
        http.httpBody = Data(JSONCoding.encode(request))
        let deadline = Date() + 120
        while true {
            do {
                let (data, response) = try await HTTPClient.session.data(for: http)
                let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                if status == 201 { return Submission(id: id, route: route, outcome: .acknowledged) }
                return Submission(id: id, route: route, outcome: .refused("HTTP \(status): \(String(decoding: data.prefix(200), as: UTF8.self))"))
            } catch let error as URLError where error.code == .cannotConnectToHost && Date() < deadline {
                // Nothing was sent: wait for the adapter to come back, then send it again.
                try? await waitFor("\(route.from)'s API back", timeout: max(1, deadline.timeIntervalSinceNow)) {
                    await httpGet(port: self.cluster.apiPorts[route.from]!, path: "/health") != nil
                }
            } catch {
                return Submission(id: id, route: route, outcome: .indeterminate)
            }
        }
    }
}

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import HTTPTypes
import Hummingbird
import Logging
import RujukCore

/// The recipients' agency systems: one HTTP server taking every adapter's webhook POSTs
/// (`/hook/<agency>`), recording each as it arrives — repeats included — for the checker. This
/// is what a person at the hospital or the shelter would see.
final class AgencySystem: @unchecked Sendable {
    private let host: String
    private let port: Int
    private let received = Locked<[Delivery]>([])
    private var task: Task<Void, Error>?

    /// - Parameter host: the address it listens on; 127.0.0.1 unless an adapter runs in a
    ///   network namespace of its own and must reach it over the veth pair.
    init(host: String = "127.0.0.1") throws {
        self.host = host
        port = try Loopback.freePort()
    }

    func url(for agency: String) -> String { "http://\(host):\(port)/hook/\(agency)" }

    /// Starts the server and waits until it answers.
    func start() async throws {
        let router = Router()
        let received = self.received
        router.post("hook/{agency}") { request, context in
            let agency = try context.parameters.require("agency")
            let key = request.headers[HTTPField.Name("Idempotency-Key")!] ?? ""
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]
            received.withLock {
                $0.append(Delivery(agency: agency, idempotencyKey: key, type: object?["type"] as? String ?? "",
                                   referralID: object?["referral_id"] as? String ?? ""))
            }
            return Response(status: .noContent)
        }
        router.get("ping") { _, _ in Response(status: .noContent) }
        var logger = Logger(label: "agency-system")
        logger.logLevel = .critical
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "agency-system"), logger: logger)
        task = Task { try await app.runService() }
        try await waitFor("the agency system's server", timeout: 30) { await httpGet(host: host, port: port, path: "/ping") != nil }
    }

    func stop() { task?.cancel() }

    /// Everything received so far, in arrival order.
    var deliveries: [Delivery] { received.current }
}

/// One webhook POST as the agency system saw it.
struct Delivery: Sendable, Equatable {
    var agency: String
    var idempotencyKey: String
    var type: String
    var referralID: String
}

/// GET on loopback; the body, or nil when nothing answered with 2xx.
func httpGet(host: String = "127.0.0.1", port: Int, path: String, token: String? = nil) async -> Data? {
    var request = URLRequest(url: URL(string: "http://\(host):\(port)\(path)")!, timeoutInterval: 5)
    if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
    guard let (data, response) = try? await HTTPClient.session.data(for: request),
          let status = (response as? HTTPURLResponse)?.statusCode, status / 100 == 2 else { return nil }
    return data
}

enum HTTPClient {
    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 64
        return URLSession(configuration: configuration)
    }()
}

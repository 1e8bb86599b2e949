import HTTPTypes
import Hummingbird
import Logging
import RujukCore

/// The `Host` names a listener answers to: the loopback ones, its own bind address, and the
/// names of `allowed_hosts`, each with no port or the listener's own (an entry may name one).
///
/// A web page on another site can make a browser resolve its own name to 127.0.0.1 (DNS
/// rebinding) and then read a local API as same-origin; the one thing it cannot change is the
/// `Host` the browser sends, so that is what is checked.
public struct HostAllowList: Sendable {
    private let names: Set<String>
    private let namesWithPort: Set<String>
    private let boundPort: @Sendable () -> Int?

    /// `boundPort` gives the port actually bound (the configured one may be 0).
    public init(listener: HostPort, settings: HTTPListenerSettings, boundPort: @escaping @Sendable () -> Int?) {
        var names: Set<String> = ["127.0.0.1", "localhost", "::1"]
        var namesWithPort: Set<String> = []
        if let own = Self.split(listener.host), !["0.0.0.0", "::", "*", ""].contains(own.host) {
            names.insert(own.host)
        }
        for entry in settings.allowedHosts {
            guard let parsed = Self.split(entry) else { continue }
            if let port = parsed.port {
                namesWithPort.insert("\(parsed.host) \(port)")
            } else {
                names.insert(parsed.host)
            }
        }
        self.names = names
        self.namesWithPort = namesWithPort
        self.boundPort = boundPort
    }

    /// Whether a request with this `Host` (its authority) is for this listener.
    public func allows(_ authority: String?) -> Bool {
        guard let authority, let (host, port) = Self.split(authority) else { return false }
        if let port, namesWithPort.contains("\(host) \(port)") { return true }
        return names.contains(host) && (port == nil || port == boundPort())
    }

    /// `host[:port]`, `[v6][:port]` or a bare v6 address, as a lowercase host without brackets
    /// or a trailing dot, and the port; nil when malformed.
    static func split(_ text: String) -> (host: String, port: Int?)? {
        var host = Substring(text.lowercased())
        var port: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return nil }
                port = rest.dropFirst()
            }
            host = host[host.index(after: host.startIndex)..<close]
        } else if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") {
            port = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        guard !host.isEmpty else { return nil }
        guard let port else { return (String(host), nil) }
        guard !port.isEmpty, port.count <= 5, port.allSatisfy(\.isASCII), let number = Int(port), number <= 65535 else { return nil }
        return (String(host), number)
    }
}

/// Answers 421 Misdirected Request (`misdirected_host`) to a request whose `Host` the listener
/// does not answer to, before any route or token check sees it.
public struct HostCheckMiddleware<Context: RequestContext>: RouterMiddleware {
    let allowed: HostAllowList

    public init(_ allowed: HostAllowList) { self.allowed = allowed }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // A second Host header stays among the fields; refuse rather than guess which one counts.
        guard allowed.allows(request.head.authority), request.headers[values: .extraHost].isEmpty else {
            context.logger.warning("security: request for another host refused", metadata: [
                "http.host": "\(String((request.head.authority ?? "(none)").prefix(100)))",
            ])
            return JSONResponse.error(
                RujukError(.misdirectedHost, "this server does not answer to that host name; see allowed_hosts"),
                status: .misdirectedRequest)
        }
        return try await next(request, context)
    }
}

extension HTTPField.Name {
    /// `Host` as a field: the codec takes the first into `authority` and leaves any other here.
    fileprivate static let extraHost = HTTPField.Name("Host")!
}

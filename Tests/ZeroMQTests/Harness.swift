import CZeroMQ
import Foundation
import ZeroMQ

/// The sockets, monitors and ZAP handler of one test, all in one context, closed together in
/// `close()` before the context goes (`zmq_ctx_term` would block on a socket left open).
final class Harness {
    let context: Context
    let serverKeys: CurveKeyPair
    private var sockets: [Socket] = []
    private var monitors: [SocketMonitor] = []
    private var handlers: [ZAPHandler] = []

    static let domain = "rujuk.test"
    /// How long to wait for something that should happen.
    static let patience = 5_000
    /// How long to watch for something that should not happen, once the event that settles
    /// the outcome (a refused handshake, say) has been seen.
    static let quietPeriod = 300

    init() throws {
        context = try Context()
        serverKeys = try CurveKeyPair.generate()
    }

    func close() {
        for handler in handlers { handler.stop() }
        for monitor in monitors { monitor.close() }
        for socket in sockets { socket.close() }
    }

    /// A socket whose sends and receives give up after `patience`: a test that waits on a
    /// peer that never comes fails instead of hanging.
    func socket(_ type: SocketType) throws -> Socket {
        let socket = try Socket(context, type)
        try socket.set(ZMQ_SNDTIMEO, Int32(Self.patience))
        try socket.set(ZMQ_RCVTIMEO, Int32(Self.patience))
        sockets.append(socket)
        return socket
    }

    func monitor(_ socket: Socket) throws -> SocketMonitor {
        let monitor = try SocketMonitor(socket, context: context)
        monitors.append(monitor)
        return monitor
    }

    /// A started ZAP handler for the harness's context.
    @discardableResult
    func startZAPHandler(
        mechanisms: Set<ZAPRequest.Mechanism> = [.curve],
        authorize: @escaping @Sendable (ZAPRequest) -> String?
    ) throws -> ZAPHandler {
        let handler = ZAPHandler(context: context, mechanisms: mechanisms, authorize: authorize)
        try handler.start()
        handlers.append(handler)
        return handler
    }

    /// A ZAP handler admitting the keys of `roster`, as they are at each handshake.
    @discardableResult
    func startZAPHandler(roster: Roster) throws -> ZAPHandler {
        try startZAPHandler { roster.userId(for: $0) }
    }

    /// A CURVE ROUTER on the loopback, port picked by the kernel; returns it and its endpoint.
    ///
    /// - Parameter handshakeMilliseconds: `ZMQ_HANDSHAKE_IVL`, when the default 30 s is too
    ///   long for a handshake the test expects to stall.
    func curveServer(handshakeMilliseconds: Int32? = nil) throws -> (Socket, String) {
        let server = try socket(.router)
        try server.makeCurveServer(secretKey: serverKeys.secretKey, zapDomain: Self.domain)
        if let handshakeMilliseconds { try server.set(ZMQ_HANDSHAKE_IVL, handshakeMilliseconds) }
        try server.bind("tcp://127.0.0.1:*")
        return (server, try server.lastEndpoint)
    }

    /// A DEALER connected to `endpoint` as a CURVE client with `keys`, monitored from before
    /// its connect so that no handshake event is missed.
    func curveClient(_ keys: CurveKeyPair, to endpoint: String) throws -> (Socket, SocketMonitor) {
        let client = try socket(.dealer)
        try client.makeCurveClient(serverKey: serverKeys.publicKey, publicKey: keys.publicKey, secretKey: keys.secretKey)
        let monitor = try monitor(client)
        try client.connect(endpoint)
        return (client, monitor)
    }
}

/// The client keys a test's ZAP handler admits, and the requests it was asked about.
final class Roster: @unchecked Sendable {
    private let lock = NSLock()
    private var userIds: [String: String]
    private var asked: [ZAPRequest] = []

    init(_ userIds: [String: String] = [:]) { self.userIds = userIds }

    func admit(_ key: String, as userId: String) { lock.withLock { userIds[key] = userId } }
    func revoke(_ key: String) { _ = lock.withLock { userIds.removeValue(forKey: key) } }

    /// The requests the handler has received so far.
    var requests: [ZAPRequest] { lock.withLock { asked } }

    func userId(for request: ZAPRequest) -> String? {
        lock.withLock {
            asked.append(request)
            return request.clientKey.flatMap { userIds[$0] }
        }
    }
}

/// The next message on `socket`, or nil when none comes within `milliseconds`.
func receive(_ socket: Socket, within milliseconds: Int = Harness.patience) throws -> Multipart? {
    guard try poll([.socket(socket)], timeoutMilliseconds: milliseconds)[0] else { return nil }
    return try socket.receive(dontWait: true)
}

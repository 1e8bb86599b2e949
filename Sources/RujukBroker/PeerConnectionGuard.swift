import Foundation
import Logging
import RujukCore
import RujukHTTP
import ZeroMQ

/// Keeps strangers from taking every descriptor before they authenticate: a thread that
/// watches the broker's listening sockets (`SocketMonitor`) and cuts each TCP connection
/// libzmq accepts beyond `maxConnectionsPerAddress` from one IP address or `maxConnections`
/// in all. Connections that stall in the handshake go by themselves after
/// `handshakeTimeoutMs` (ZMQ_HANDSHAKE_IVL, set on the sockets).
///
/// libzmq has no limit of its own on accepted connections (ZMQ_MAXSOCKETS counts sockets),
/// so the guard cuts them under its feet as `dropConnection` does for a revoked key.
final class PeerConnectionGuard: @unchecked Sendable {
    private let monitors: [SocketMonitor]
    private let limits: BrokerLimits
    private let logger: Logger
    private let events: SecurityEvents
    private let wakeup = Wakeup()
    private let stopping = Locked(false)
    private let finished = DispatchSemaphore(value: 0)
    /// Guard-thread state.
    private var tally = ConnectionTally()

    /// The kinds of event the guard needs; create the monitors with these before binding.
    static let kinds: Set<SocketEvent.Kind> = [.accepted, .disconnected]

    init(monitors: [SocketMonitor], limits: BrokerLimits, logger: Logger, events: SecurityEvents) {
        self.monitors = monitors
        self.limits = limits
        self.logger = logger
        self.events = events
    }

    func start() {
        let thread = Thread { [self] in
            run()
            for monitor in monitors { monitor.close() }
            finished.signal()
        }
        thread.name = "rujuk.connections"
        thread.start()
    }

    /// Ends the thread and closes the monitors; waits until it has.
    func stop() {
        stopping.withLock { $0 = true }
        wakeup.notify()
        finished.wait()
        finished.signal()
    }

    private func run() {
        let targets = [.fd(wakeup.fileDescriptor)] + monitors.map(\.pollTarget)
        while !stopping.current {
            do {
                let readable = try poll(targets, timeoutMilliseconds: 1000)
                if readable[0] { wakeup.drain() }
                for (index, monitor) in monitors.enumerated() where readable[index + 1] {
                    while let event = try monitor.next(timeoutMilliseconds: 0) { handle(event) }
                }
            } catch let error as ZMQError where error.isTerminated {
                return
            } catch {
                logger.error("connection guard error", metadata: ["error": "\(error)"])
            }
        }
    }

    private func handle(_ event: SocketEvent) {
        let fd = Int32(bitPattern: event.value)
        switch event.kind {
        case .accepted:
            guard let peer = peerAddress(ofFD: fd) else { return }
            if tally.admit(fd: fd, peer: peer, limits: limits) { return }
            dropConnection(fd: fd, peer: peer)
            logger.security(.connectionLimit, "connection cut: too many connections",
                            metadata: ["peer": "\(ConnectionTally.host(of: peer))"], events: events)
        case .disconnected:
            tally.remove(fd: fd)
        default:
            break
        }
    }
}

/// The accepted TCP connections the guard knows of, by descriptor and by IP address.
struct ConnectionTally {
    private var peers: [Int32: String] = [:]
    private var perHost: [String: Int] = [:]

    var count: Int { peers.count }
    func count(host: String) -> Int { perHost[host] ?? 0 }

    /// Records a new connection if it is within the limits; false (and not recorded) if not.
    /// Over a limit, entries whose descriptor no longer leads to their peer are forgotten
    /// first, in case a disconnect event was missed.
    mutating func admit(fd: Int32, peer: String, limits: BrokerLimits) -> Bool {
        remove(fd: fd)
        let host = Self.host(of: peer)
        if !within(host, limits) { forgetStale() }
        guard within(host, limits) else { return false }
        peers[fd] = peer
        perHost[host, default: 0] += 1
        return true
    }

    mutating func remove(fd: Int32) {
        guard let peer = peers.removeValue(forKey: fd) else { return }
        let host = Self.host(of: peer)
        perHost[host] = (perHost[host] ?? 1) > 1 ? perHost[host]! - 1 : nil
    }

    private func within(_ host: String, _ limits: BrokerLimits) -> Bool {
        count(host: host) < limits.maxConnectionsPerAddress && peers.count < limits.maxConnections
    }

    private mutating func forgetStale() {
        for (fd, peer) in peers where peerAddress(ofFD: fd) != peer { remove(fd: fd) }
    }

    /// `host` of `host:port` or `[host]:port`.
    static func host(of peer: String) -> String {
        guard let colon = peer.lastIndex(of: ":") else { return peer }
        return String(peer[..<colon])
    }
}

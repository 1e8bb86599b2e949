import CZeroMQ
import Foundation

/// One event libzmq reported about a monitored socket's connections.
public struct SocketEvent: Sendable, CustomStringConvertible {
    /// What happened.
    public var kind: Kind
    /// The event's value: for `handshakeFailedAuth` the ZAP status code (e.g. 400), for
    /// `handshakeFailedProtocol` a `ZMQ_PROTOCOL_ERROR_*` code, for `connected` and `accepted`
    /// the new descriptor, for failures an errno.
    public var value: UInt32
    /// The endpoint concerned, e.g. `tcp://127.0.0.1:5555`.
    public var endpoint: String

    public init(kind: Kind, value: UInt32, endpoint: String) {
        self.kind = kind
        self.value = value
        self.endpoint = endpoint
    }

    public var description: String { "\(kind)(\(value)) \(endpoint)" }

    /// A `ZMQ_EVENT_*` value.
    public struct Kind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        public static let connected = Kind(rawValue: ZMQ_EVENT_CONNECTED)
        public static let connectDelayed = Kind(rawValue: ZMQ_EVENT_CONNECT_DELAYED)
        public static let connectRetried = Kind(rawValue: ZMQ_EVENT_CONNECT_RETRIED)
        public static let listening = Kind(rawValue: ZMQ_EVENT_LISTENING)
        public static let bindFailed = Kind(rawValue: ZMQ_EVENT_BIND_FAILED)
        public static let accepted = Kind(rawValue: ZMQ_EVENT_ACCEPTED)
        public static let acceptFailed = Kind(rawValue: ZMQ_EVENT_ACCEPT_FAILED)
        public static let closed = Kind(rawValue: ZMQ_EVENT_CLOSED)
        public static let closeFailed = Kind(rawValue: ZMQ_EVENT_CLOSE_FAILED)
        public static let disconnected = Kind(rawValue: ZMQ_EVENT_DISCONNECTED)
        public static let monitorStopped = Kind(rawValue: ZMQ_EVENT_MONITOR_STOPPED)
        public static let handshakeFailedNoDetail = Kind(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        public static let handshakeSucceeded = Kind(rawValue: ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        public static let handshakeFailedProtocol = Kind(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        public static let handshakeFailedAuth = Kind(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

        /// The three ways a handshake can fail.
        public static let handshakeFailures: Set<Kind> = [.handshakeFailedNoDetail, .handshakeFailedProtocol, .handshakeFailedAuth]

        public var description: String {
            switch self {
            case .connected: "connected"
            case .connectDelayed: "connectDelayed"
            case .connectRetried: "connectRetried"
            case .listening: "listening"
            case .bindFailed: "bindFailed"
            case .accepted: "accepted"
            case .acceptFailed: "acceptFailed"
            case .closed: "closed"
            case .closeFailed: "closeFailed"
            case .disconnected: "disconnected"
            case .monitorStopped: "monitorStopped"
            case .handshakeFailedNoDetail: "handshakeFailedNoDetail"
            case .handshakeSucceeded: "handshakeSucceeded"
            case .handshakeFailedProtocol: "handshakeFailedProtocol"
            case .handshakeFailedAuth: "handshakeFailedAuth"
            default: "event(0x\(String(rawValue, radix: 16)))"
            }
        }
    }
}

/// Watches a socket's connection events (`zmq_socket_monitor`) through an inproc PAIR.
///
/// Create it before the monitored socket binds or connects: libzmq drops events that occur
/// while no reader is attached. The monitor's own PAIR socket is, like any `Socket`, for one
/// thread at a time, though not necessarily the thread that uses the monitored socket.
/// Monitoring ends when either socket is closed.
public final class SocketMonitor: @unchecked Sendable {
    private let reader: Socket

    /// Starts monitoring `socket`.
    ///
    /// - Parameters:
    ///   - context: the context `socket` was made in (inproc works only within one context).
    ///   - kinds: the events to report; nil reports all of them.
    public init(_ socket: Socket, context: Context, kinds: Set<SocketEvent.Kind>? = nil) throws {
        let endpoint = "inproc://zeromq.monitor.\(UUID().uuidString)"
        let mask = kinds.map { $0.reduce(Int32(0)) { $0 | $1.rawValue } } ?? ZMQ_EVENT_ALL
        guard zmq_socket_monitor(try socket.raw, endpoint, mask) == 0 else {
            throw ZMQError.last("zmq_socket_monitor")
        }
        reader = try Socket(context, .pair)
        try reader.connect(endpoint)
    }

    /// Stops reading events. Like any socket's, the monitor's must be closed (or released)
    /// before its context goes.
    public func close() { reader.close() }

    /// What to hand `poll` to wait for events of several monitors at once; then read them
    /// with `next(timeoutMilliseconds: 0)`.
    public var pollTarget: PollTarget { .socket(reader) }

    /// The next event, or nil when none comes within the timeout.
    public func next(timeoutMilliseconds: Int) throws -> SocketEvent? {
        guard try poll([.socket(reader)], timeoutMilliseconds: timeoutMilliseconds)[0],
              let message = try reader.receive(dontWait: true)
        else { return nil }
        // Version 1 format: a 6-byte frame (16-bit event, 32-bit value, host byte order),
        // then the endpoint.
        guard message.frames.count == 2, message.frames[0].count == 6 else {
            throw ZMQError(code: EPROTO, operation: "socket monitor: unexpected event format")
        }
        let header = message.frames[0]
        let event = header.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt16.self) }
        let value = header.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 2, as: UInt32.self) }
        return SocketEvent(
            kind: SocketEvent.Kind(rawValue: Int32(event)),
            value: value,
            endpoint: String(decoding: message.frames[1], as: UTF8.self)
        )
    }

    /// Waits for the first event of one of `kinds`, skipping others; nil when none comes
    /// within the timeout.
    public func wait(for kinds: Set<SocketEvent.Kind>, timeoutMilliseconds: Int) throws -> SocketEvent? {
        let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return nil }
            let milliseconds = Int(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
            // nil here can also be an interrupted poll: the loop checks the deadline again.
            if let event = try next(timeoutMilliseconds: max(1, milliseconds)), kinds.contains(event.kind) {
                return event
            }
        }
    }

    /// Waits for an event of `kind`; nil when none comes within the timeout.
    public func wait(for kind: SocketEvent.Kind, timeoutMilliseconds: Int) throws -> SocketEvent? {
        try wait(for: [kind], timeoutMilliseconds: timeoutMilliseconds)
    }
}

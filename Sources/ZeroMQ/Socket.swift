import CZeroMQ
import Foundation

/// The socket types Rujuk uses.
public enum SocketType: Sendable {
    case router, dealer, pub, sub, xpub, pair, push, pull, rep, req

    var rawValue: Int32 {
        switch self {
        case .router: ZMQ_ROUTER
        case .dealer: ZMQ_DEALER
        case .pub: ZMQ_PUB
        case .sub: ZMQ_SUB
        case .xpub: ZMQ_XPUB
        case .pair: ZMQ_PAIR
        case .push: ZMQ_PUSH
        case .pull: ZMQ_PULL
        case .rep: ZMQ_REP
        case .req: ZMQ_REQ
        }
    }
}

/// One received multipart message: its frames, the ZAP `User-Id` libzmq attached to it, and
/// the TCP connection it came in on.
public struct Multipart: Sendable {
    public var frames: [[UInt8]]
    /// The identity the ZAP handler returned for the peer (`zmq_msg_gets(msg, "User-Id")`);
    /// nil when the connection is not authenticated through ZAP.
    public var userId: String?
    /// The descriptor of the TCP connection the message was read from
    /// (`zmq_msg_get(msg, ZMQ_SRCFD)`, from the first frame that has one: the routing-id frame
    /// a ROUTER prepends has none); nil for other transports. Pass it to
    /// `dropConnection(fd:peer:)` to cut that peer off. libzmq closes and reuses descriptors,
    /// so it names the connection only while that connection lasts.
    public var sourceFD: Int32?

    /// The message was over the socket's `maxReceiveBytes` or `maxReceiveFrames`: its frames
    /// after the first were read and dropped, never copied.
    public var oversize: Bool = false

    public init(frames: [[UInt8]], userId: String? = nil, sourceFD: Int32? = nil, oversize: Bool = false) {
        self.oversize = oversize
        self.frames = frames
        self.userId = userId
        self.sourceFD = sourceFD
    }
}

/// A libzmq socket.
///
/// libzmq sockets are not thread-safe: a `Socket` must be used by one thread at a time, and in
/// Rujuk each one is created and used by the single dedicated thread that owns it. It is marked
/// `@unchecked Sendable` only so that the owning thread can be handed its sockets at start.
public final class Socket: @unchecked Sendable {
    private var handle: UnsafeMutableRawPointer?
    public let type: SocketType
    /// `receive` copies at most this many bytes of one message (all frames together) and at
    /// most `maxReceiveFrames` frames; a larger message is drained and reported `oversize`.
    /// (libzmq itself bounds only each frame, with ZMQ_MAXMSGSIZE.)
    public var maxReceiveBytes = Int.max
    public var maxReceiveFrames = Int.max

    public init(_ context: Context, _ type: SocketType) throws {
        guard let handle = zmq_socket(context.handle, type.rawValue) else {
            throw ZMQError.last("zmq_socket")
        }
        self.handle = handle
        self.type = type
        // Never let close() or ctx_term block on undelivered messages; Rujuk's durability
        // comes from its stores, not from libzmq's queues.
        try set(ZMQ_LINGER, Int32(0))
    }

    deinit { close() }

    /// Closes the socket; further use throws ENOTSOCK.
    public func close() {
        if let handle {
            zmq_close(handle)
            self.handle = nil
        }
    }

    var raw: UnsafeMutableRawPointer {
        get throws {
            guard let handle else { throw ZMQError(code: ENOTSOCK, operation: "socket closed") }
            return handle
        }
    }

    // MARK: - Endpoints

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(try raw, endpoint) == 0 else { throw ZMQError.last("bind \(endpoint)") }
    }

    /// Stops listening on `endpoint`. For inproc the name is free again on return, whereas
    /// `close()` releases it only later, from libzmq's reaper thread.
    public func unbind(_ endpoint: String) throws {
        guard zmq_unbind(try raw, endpoint) == 0 else { throw ZMQError.last("unbind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(try raw, endpoint) == 0 else { throw ZMQError.last("connect \(endpoint)") }
    }

    public func disconnect(_ endpoint: String) throws {
        guard zmq_disconnect(try raw, endpoint) == 0 else { throw ZMQError.last("disconnect \(endpoint)") }
    }

    /// The endpoint actually bound, e.g. after binding `tcp://127.0.0.1:*`.
    public var lastEndpoint: String {
        get throws {
            var buffer = [CChar](repeating: 0, count: 256)
            var size = buffer.count
            guard zmq_getsockopt(try raw, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else {
                throw ZMQError.last("getsockopt ZMQ_LAST_ENDPOINT")
            }
            return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    // MARK: - Options

    public func set(_ option: Int32, _ value: Int32) throws {
        var value = value
        guard zmq_setsockopt(try raw, option, &value, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError.last("setsockopt \(option)")
        }
    }

    public func set(_ option: Int32, int64 value: Int64) throws {
        var value = value
        guard zmq_setsockopt(try raw, option, &value, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError.last("setsockopt \(option)")
        }
    }

    public func set(_ option: Int32, bytes: [UInt8]) throws {
        let result = bytes.withUnsafeBytes { zmq_setsockopt(try? raw, option, $0.baseAddress, $0.count) }
        guard result == 0 else { throw ZMQError.last("setsockopt \(option)") }
    }

    public func set(_ option: Int32, string value: String) throws {
        try set(option, bytes: Array(value.utf8))
    }

    public func getInt32(_ option: Int32) throws -> Int32 {
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        guard zmq_getsockopt(try raw, option, &value, &size) == 0 else {
            throw ZMQError.last("getsockopt \(option)")
        }
        return value
    }

    /// The file descriptor libzmq signals when the socket may have become readable.
    public var fileDescriptor: Int32 {
        get throws {
            var fd: Int32 = -1
            var size = MemoryLayout<Int32>.size
            guard zmq_getsockopt(try raw, ZMQ_FD, &fd, &size) == 0 else { throw ZMQError.last("getsockopt ZMQ_FD") }
            return fd
        }
    }

    /// Whether a message can be read now without blocking (`ZMQ_EVENTS & ZMQ_POLLIN`).
    public var isReadable: Bool {
        (try? getInt32(ZMQ_EVENTS)).map { $0 & Int32(ZMQ_POLLIN) != 0 } ?? false
    }

    // MARK: - Sending

    /// Sends all frames as one multipart message.
    ///
    /// - Parameter dontWait: fail with EAGAIN instead of blocking when the peer's queue is full
    ///   (or, for a ROUTER with `ZMQ_ROUTER_MANDATORY`, when the peer is unknown: EHOSTUNREACH).
    public func send(_ frames: [[UInt8]], dontWait: Bool = false) throws {
        let socket = try raw
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = index < frames.count - 1 ? ZMQ_SNDMORE : 0
            if dontWait { flags |= ZMQ_DONTWAIT }
            let result = frame.withUnsafeBytes { buffer in
                zmq_send(socket, buffer.baseAddress, buffer.count, flags)
            }
            if result < 0 { throw ZMQError.last("send") }
        }
    }

    // MARK: - Receiving

    /// Receives one whole multipart message, or nil when `dontWait` is set and none is ready.
    /// A message over `maxReceiveBytes` or `maxReceiveFrames` comes back `oversize`, with its
    /// first frame only (a ROUTER's routing id, to answer it).
    public func receive(dontWait: Bool = false) throws -> Multipart? {
        let socket = try raw
        var frames: [[UInt8]] = []
        var userId: String?
        var sourceFD: Int32?
        var copied = 0
        var oversize = false
        let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        defer { message.deallocate() }
        while true {
            zmq_msg_init(message)
            defer { zmq_msg_close(message) }
            let flags: Int32 = (dontWait && frames.isEmpty) ? ZMQ_DONTWAIT : 0
            if zmq_msg_recv(message, socket, flags) < 0 {
                let error = ZMQError.last("recv")
                if error.wouldBlock && frames.isEmpty { return nil }
                if error.code == EINTR && frames.isEmpty { return nil }
                throw error
            }
            let size = zmq_msg_size(message)
            copied += size
            if oversize || copied > maxReceiveBytes || frames.count >= maxReceiveFrames {
                // Past the limits: the rest of the message is read and dropped, never copied.
                oversize = true
            } else if let data = zmq_msg_data(message), size > 0 {
                frames.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
            } else {
                frames.append([])
            }
            if userId == nil, let property = zmq_msg_gets(message, "User-Id") {
                userId = String(cString: property)
            }
            if sourceFD == nil {
                let fd = zmq_msg_get(message, ZMQ_SRCFD)
                if fd >= 0 { sourceFD = fd }
            }
            if zmq_msg_more(message) == 0 { break }
        }
        return Multipart(frames: oversize ? Array(frames.prefix(1)) : frames, userId: userId, sourceFD: sourceFD, oversize: oversize)
    }
}

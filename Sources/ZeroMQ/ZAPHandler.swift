import CZeroMQ
import Foundation

/// The ZAP handler (RFC 27) of one `Context`: a dedicated thread that answers the
/// authentication requests the context's server sockets send during each handshake.
///
/// It owns a REP socket bound to `inproc://zeromq.zap.01`, the endpoint libzmq's server
/// sockets ask; there can be one per context. For each request of an admitted mechanism it
/// calls `authorize`, and replies 200 with the User-Id the closure returns, which libzmq then
/// attaches to every message from that peer (`Multipart.userId`), or 400 when it returns nil.
/// Requests of any other mechanism are refused without asking the closure.
///
/// Start it before any CURVE server socket of the context handshakes: a server made with
/// `makeCurveServer` refuses every client while no handler is bound. libzmq asks again at each
/// new connection, never for one already made: to apply a revocation to a connected peer,
/// change what `authorize` admits, then `dropConnection(fd:peer:)`.
///
/// A refusal is final for the client's connection attempt: libzmq 4.3 counts it a protocol
/// error and stops reconnecting to that endpoint (the client sees `handshakeFailedAuth` with
/// value 400, then `disconnected`). A client admitted later must `disconnect` and `connect`
/// again, or open a new socket.
public final class ZAPHandler: @unchecked Sendable {
    private let context: Context
    private let mechanisms: Set<ZAPRequest.Mechanism>
    private let authorize: @Sendable (ZAPRequest) -> String?
    private let wakeup = Wakeup()
    private let lock = NSLock()
    private var started = false
    private var stopping = false
    private var lastError: ZMQError?
    private let finished = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - context: the context whose server sockets this handler answers.
    ///   - mechanisms: the mechanisms `authorize` is asked about; requests for others are
    ///     refused (400). Only CURVE identifies the peer by a key, hence the default.
    ///   - authorize: called on the handler's thread, once per handshake; returns the User-Id
    ///     to admit the peer as, or nil to refuse it. It must not block: handshakes wait.
    public init(
        context: Context,
        mechanisms: Set<ZAPRequest.Mechanism> = [.curve],
        authorize: @escaping @Sendable (ZAPRequest) -> String?
    ) {
        self.context = context
        self.mechanisms = mechanisms
        self.authorize = authorize
    }

    /// Binds the handler's socket and starts its thread; returns once the socket is bound, so
    /// that no handshake after this call can miss it.
    ///
    /// - Throws: `ZMQError` with EADDRINUSE when the context already has a ZAP handler.
    public func start() throws {
        lock.withLock {
            precondition(!started, "ZAPHandler started twice")
            started = true
        }
        let ready = DispatchSemaphore(value: 0)
        let outcome = Box<Result<Void, ZMQError>>(.success(()))
        let thread = Thread { [self] in
            let socket: Socket
            do {
                socket = try Socket(context, .rep)
                try socket.bind(ZAP.endpoint)
            } catch {
                outcome.value = .failure(error as? ZMQError ?? ZMQError(code: EINVAL, operation: "\(error)"))
                ready.signal()
                finished.signal()
                return
            }
            ready.signal()
            run(socket)
            // Unbinding first frees the endpoint before stop() returns, for a next handler.
            try? socket.unbind(ZAP.endpoint)
            socket.close()
            finished.signal()
        }
        thread.name = "zeromq.zap"
        thread.start()
        ready.wait()
        try outcome.value.get()
    }

    /// Ends the thread and unbinds; waits until it has, so that another handler can start on
    /// the context right away. Handshakes from then on are refused by servers made with
    /// `makeCurveServer`.
    public func stop() {
        let running = lock.withLock {
            stopping = true
            return started
        }
        guard running else { return }
        wakeup.notify()
        finished.wait()
        finished.signal()
    }

    /// The error that ended the thread early, if one did; handshakes are then refused.
    public var failure: ZMQError? { lock.withLock { lastError } }

    // MARK: - The handler thread

    private func run(_ socket: Socket) {
        while !lock.withLock({ stopping }) {
            do {
                let readable = try poll([.socket(socket), .fd(wakeup.fileDescriptor)], timeoutMilliseconds: -1)
                if readable[1] { wakeup.drain() }
                // REP: exactly one reply per request, before the next receive.
                while let request = try socket.receive(dontWait: true) {
                    try socket.send(answer(request.frames))
                }
            } catch let error as ZMQError {
                if !error.isTerminated { lock.withLock { lastError = error } }
                return
            } catch {
                lock.withLock { lastError = ZMQError(code: EINVAL, operation: "\(error)") }
                return
            }
        }
    }

    private func answer(_ frames: [[UInt8]]) -> [[UInt8]] {
        let request: ZAPRequest
        do {
            request = try ZAPRequest(frames: frames)
        } catch {
            return ZAP.reply(to: frames.count > 1 ? frames[1] : [], status: 500, text: "Malformed request")
        }
        guard mechanisms.contains(request.mechanism) else {
            return ZAP.reply(to: request.requestId, status: 400, text: "Mechanism not allowed")
        }
        guard let userId = authorize(request) else {
            return ZAP.reply(to: request.requestId, status: 400, text: "Not authorized")
        }
        return ZAP.reply(to: request.requestId, status: 200, text: "OK", userId: userId)
    }
}

/// A value handed from the handler thread to `start()`; the semaphore orders the accesses.
private final class Box<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

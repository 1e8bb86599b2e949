import CZeroMQ

/// A libzmq context. Thread-safe: sockets for several threads may come from one context.
///
/// `zmq_ctx_term` runs when the last reference goes away; it blocks until every socket of the
/// context is closed, so close sockets (or let them go) before dropping the context.
public final class Context: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init(ioThreads: Int32 = 1) throws {
        guard let handle = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        self.handle = handle
        if ioThreads != 1 {
            zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads)
        }
    }

    deinit {
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    /// libzmq's version as `(major, minor, patch)`.
    public static var version: (Int32, Int32, Int32) {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (major, minor, patch)
    }

    /// Whether libzmq was built with CURVE security (libsodium or tweetnacl).
    public static var hasCurve: Bool { zmq_has("curve") != 0 }
}

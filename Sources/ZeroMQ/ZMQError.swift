import CZeroMQ

/// An error returned by libzmq, with its errno and libzmq's own description.
public struct ZMQError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The errno value libzmq reported (`zmq_errno()`).
    public let code: Int32
    /// What was being attempted, e.g. `"bind tcp://127.0.0.1:5555"`.
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    /// Captures `zmq_errno()` right after a failed call.
    static func last(_ operation: String) -> ZMQError {
        ZMQError(code: zmq_errno(), operation: operation)
    }

    public var description: String {
        "\(operation): \(String(cString: zmq_strerror(code))) (errno \(code))"
    }

    /// The call would have blocked (EAGAIN on a non-blocking call).
    public var wouldBlock: Bool { code == EAGAIN }
    /// The context was terminated while the call was in progress.
    public var isTerminated: Bool { code == ETERM }
}

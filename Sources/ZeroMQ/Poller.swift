import CZeroMQ

/// What to wait on in a `poll`: a socket, or a plain file descriptor (such as a `Wakeup`).
public enum PollTarget {
    case socket(Socket)
    case fd(Int32)
}

/// Waits until one of the targets is readable or the timeout passes (`zmq_poll`).
///
/// - Parameters:
///   - targets: what to watch for input.
///   - timeoutMilliseconds: -1 waits forever.
/// - Returns: for each target, whether it is readable.
public func poll(_ targets: [PollTarget], timeoutMilliseconds: Int) throws -> [Bool] {
    var items = try targets.map { target -> zmq_pollitem_t in
        switch target {
        case .socket(let socket):
            return zmq_pollitem_t(socket: try socket.raw, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
        case .fd(let fd):
            return zmq_pollitem_t(socket: nil, fd: fd, events: Int16(ZMQ_POLLIN), revents: 0)
        }
    }
    let result = zmq_poll(&items, Int32(items.count), timeoutMilliseconds)
    if result < 0 {
        let error = ZMQError.last("zmq_poll")
        if error.code == EINTR { return Array(repeating: false, count: items.count) }
        throw error
    }
    return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
}

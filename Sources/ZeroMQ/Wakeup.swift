#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A wake-up signal for a thread that sits in `poll`: other threads call `notify()`, the
/// owning thread polls `fileDescriptor` and calls `drain()`.
///
/// This is how async code hands work to a socket-owning thread without touching its sockets:
/// it puts the work on a lock-protected queue, then notifies. A pipe is used rather than an
/// inproc socket because a pipe's write end is safe to use from any thread.
public final class Wakeup: @unchecked Sendable {
    private let readEnd: Int32
    private let writeEnd: Int32

    public init() {
        var fds: [Int32] = [0, 0]
        precondition(pipe(&fds) == 0, "pipe() failed: \(errno)")
        readEnd = fds[0]
        writeEnd = fds[1]
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }

    /// The descriptor to poll for input.
    public var fileDescriptor: Int32 { readEnd }

    /// Wakes the polling thread. Safe from any thread; never blocks (a full pipe is already
    /// a pending wake-up).
    public func notify() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    /// Empties the pipe, so the next `poll` waits again.
    public func drain() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(readEnd, &buffer, buffer.count) > 0 {}
    }
}

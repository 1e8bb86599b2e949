import Foundation
import RujukCore

/// A TCP proxy on 127.0.0.1 between adapters and the broker, which the fault suite can cut: the
/// connections it carries are reset and new ones refused until it is restored — what a dead
/// island link or a dropped VPN looks like to both ends.
final class TCPProxy: @unchecked Sendable {
    let port: Int
    private let target: Int
    private let state = Locked<(listener: Int32, connections: Set<Int32>, cut: Bool)>((-1, [], false))

    init(target: Int) throws {
        self.target = target
        port = try Loopback.freePort()
        try listen()
    }

    /// Resets every connection and refuses new ones.
    func cut() {
        state.withLock { state in
            state.cut = true
            if state.listener >= 0 {
                shutdown(state.listener, Int32(SHUT_RDWR))
                close(state.listener)
                state.listener = -1
            }
            for fd in state.connections { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    /// Accepts connections again.
    func restore() throws {
        state.withLock { $0.cut = false }
        try listen()
    }

    private func listen() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = Loopback.address(port: port)
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard bound, Glibc.listen(fd, 64) == 0 else {
            close(fd)
            throw FaultError("the proxy cannot listen on \(port): errno \(errno)")
        }
        state.withLock { $0.listener = fd }
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                guard let upstream = connectTarget() else {
                    close(client)
                    continue
                }
                let admitted = state.withLock { state -> Bool in
                    guard !state.cut else { return false }
                    state.connections.formUnion([client, upstream])
                    return true
                }
                guard admitted else {
                    close(client)
                    close(upstream)
                    continue
                }
                pump(from: client, to: upstream)
                pump(from: upstream, to: client)
            }
        }
    }

    private func connectTarget() -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Loopback.address(port: target)
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if connected { return fd }
        close(fd)
        return nil
    }

    /// Copies bytes one way until either side closes, then closes both.
    private func pump(from source: Int32, to sink: Int32) {
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            loop: while true {
                let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
                guard count > 0 else { break }
                var offset = 0
                while offset < count {
                    let written = buffer.withUnsafeBytes { write(sink, $0.baseAddress! + offset, count - offset) }
                    guard written > 0 else { break loop }
                    offset += written
                }
            }
            shutdown(source, Int32(SHUT_RDWR))
            shutdown(sink, Int32(SHUT_RDWR))
            // The second pump to stop closes both descriptors.
            state.withLock { state in
                if state.connections.remove(source) == nil { close(source) }
                if state.connections.remove(sink) == nil { close(sink) }
            }
        }
    }
}

import Foundation

/// 127.0.0.1 for the processes that test Rujuk on one machine: the tests and the fault suite
/// listen only there and pick free ports, so that runs can go side by side.
public enum Loopback {
    /// A free TCP port on 127.0.0.1, found by letting the kernel pick one. A plain socket,
    /// closed at once: a ZeroMQ socket's close is asynchronous and would keep the port bound
    /// for a moment after. Another process may still take it before it is bound again.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = address(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw RujukError(.internal, "cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// 127.0.0.1:`port` as a socket address.
    public static func address(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }
}

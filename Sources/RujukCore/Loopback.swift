import Foundation

/// 127.0.0.1 for the processes that test Rujuk on one machine: the tests and the fault suite
/// listen only there and pick free ports, so that runs can go side by side.
public enum Loopback {
    /// A free TCP port on 127.0.0.1, never one this process handed out before.
    ///
    /// Picked at random below the kernel's ephemeral range (ip_local_port_range), where no
    /// outgoing connection — a test's HTTP client, an adapter connecting to its broker — can be
    /// given it between now and its bind; checked free by binding it with a plain socket,
    /// closed at once (a ZeroMQ socket's close is asynchronous and would keep it bound for a
    /// moment after). Another process may still take it before it is bound again.
    public static func freePort() throws -> Int {
        let ephemeralStart = ephemeralRangeStart()
        if ephemeralStart > 11_024 {
            let range = 10_000..<(ephemeralStart - 1)
            for _ in 0..<1_000 {
                let port = Int.random(in: range)
                guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
                if bindable(port) { return port }
            }
        }
        // No room below the ephemeral range: let the kernel pick.
        while true {
            guard let port = kernelPick() else { throw RujukError(.internal, "cannot find a free port") }
            if handedOut.withLock({ $0.insert(port).inserted }) { return port }
        }
    }

    private static let handedOut = Locked(Set<Int>())

    private static func ephemeralRangeStart() -> Int {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) } ?? 32_768
    }

    private static func bindable(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        let address = address(port: port)
        return withUnsafePointer(to: address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// A port the kernel picks from its ephemeral range.
    private static func kernelPick() -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = address(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        return bound ? Int(UInt16(bigEndian: address.sin_port)) : nil
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

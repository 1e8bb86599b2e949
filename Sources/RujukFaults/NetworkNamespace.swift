import Foundation

/// A network namespace joined to the host by a veth pair, for one adapter: cutting the link is
/// setting the host's end down, so packets vanish without a reset — what a dead island link
/// looks like, and harder on both ends than a closed connection (only heartbeats notice).
/// Needs root (CAP_NET_ADMIN); the addresses are link-local (169.254.0.0/16), on this host only.
final class NetworkNamespace: @unchecked Sendable {
    static let ip = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip")
    let name: String
    let agency: String
    let hostAddress: String
    let namespaceAddress: String
    private let hostInterface: String

    /// Whether this machine lets us make one (root, and `ip` present).
    static var available: Bool { getuid() == 0 && FileManager.default.isExecutableFile(atPath: ip.path) }

    init(agency: String) throws {
        let id = Int(getpid()) % 100_000
        name = "rujuk-faults-\(id)"
        self.agency = agency
        hostInterface = "rjk\(id)h"
        let subnet = id % 250 + 1
        hostAddress = "169.254.\(subnet).1"
        namespaceAddress = "169.254.\(subnet).2"
        // One left by an earlier run with the same process id.
        try? run(NetworkNamespace.ip.path, ["link", "del", hostInterface], quiet: true)
        try? run(NetworkNamespace.ip.path, ["netns", "del", name], quiet: true)
        try ip("netns", "add", name)
        try ip("link", "add", hostInterface, "type", "veth", "peer", "name", "rjk\(id)n")
        try ip("link", "set", "rjk\(id)n", "netns", name)
        try ip("addr", "add", "\(hostAddress)/30", "dev", hostInterface)
        try ip("link", "set", hostInterface, "up")
        try ip("netns", "exec", name, NetworkNamespace.ip.path, "addr", "add", "\(namespaceAddress)/30", "dev", "rjk\(id)n")
        try ip("netns", "exec", name, NetworkNamespace.ip.path, "link", "set", "rjk\(id)n", "up")
        try ip("netns", "exec", name, NetworkNamespace.ip.path, "link", "set", "lo", "up")
    }

    func cut() throws { try ip("link", "set", hostInterface, "down") }
    func restore() throws { try ip("link", "set", hostInterface, "up") }

    /// Removes the namespace and with it the veth pair.
    func destroy() {
        try? ip("link", "del", hostInterface)
        try? ip("netns", "del", name)
    }

    private func ip(_ arguments: String...) throws {
        try run(NetworkNamespace.ip.path, arguments)
    }
}

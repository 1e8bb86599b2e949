#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The remote address of a connected TCP descriptor, as `"host:port"` (`"[host]:port"` for
/// IPv6); nil when `fd` is not a connected inet socket.
///
/// Record it with a `Multipart.sourceFD` while the connection is known to be live, and hand it
/// back to `dropConnection(fd:peer:)` later, so that a descriptor libzmq has since closed and
/// reused for another peer is not cut by mistake.
public func peerAddress(ofFD fd: Int32) -> String? {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let result = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
    }
    guard result == 0 else { return nil }
    var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
    switch Int32(storage.ss_family) {
    case AF_INET:
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                var ip = address.pointee.sin_addr
                guard inet_ntop(AF_INET, &ip, &text, socklen_t(text.count)) != nil else { return nil }
                return "\(string(text)):\(UInt16(bigEndian: address.pointee.sin_port))"
            }
        }
    case AF_INET6:
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                var ip = address.pointee.sin6_addr
                guard inet_ntop(AF_INET6, &ip, &text, socklen_t(text.count)) != nil else { return nil }
                return "[\(string(text))]:\(UInt16(bigEndian: address.pointee.sin6_port))"
            }
        }
    default:
        return nil
    }
}

private func string(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Cuts one peer's TCP connection (`shutdown(fd, SHUT_RDWR)`) under libzmq's feet.
///
/// libzmq sees the connection end and drops that peer's session; the peer reconnects on its
/// own and has to pass the CURVE handshake and the ZAP handler again. This is how a server
/// applies a revoked key to a peer that authenticated before the revocation: remove the key
/// from what the `ZAPHandler` admits, then drop the connection. The descriptor is shut down,
/// not closed, because libzmq still owns it and will close it itself.
///
/// Call it from the thread that owns the socket the message came from, with a `sourceFD` of a
/// message received recently.
///
/// - Parameters:
///   - fd: a `Multipart.sourceFD`.
///   - expectedPeer: when given, the connection is cut only if its `peerAddress(ofFD:)` is
///     still this, which guards against a descriptor reused for another peer.
/// - Returns: whether a connection was shut down; false when `fd` no longer leads to
///   `expectedPeer` or is not a connected socket any more.
@discardableResult
public func dropConnection(fd: Int32, peer expectedPeer: String? = nil) -> Bool {
    if let expectedPeer, peerAddress(ofFD: fd) != expectedPeer { return false }
    return shutdown(fd, Int32(SHUT_RDWR)) == 0
}

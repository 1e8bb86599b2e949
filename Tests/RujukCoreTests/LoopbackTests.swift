import Foundation
import RujukCore
import Testing

/// The free ports the tests and the fault suite listen on.
@Suite(.timeLimit(.minutes(5))) struct LoopbackTests {
    @Test func freePortsAreDistinctBindableAndOutsideTheEphemeralRange() throws {
        let range = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        let ephemeralStart = Int(range.split(whereSeparator: \.isWhitespace)[0])!
        var ports = Set<Int>()
        for _ in 0..<200 {
            let port = try Loopback.freePort()
            #expect(ports.insert(port).inserted, "port \(port) handed out twice")
            // Where no outgoing connection is given a port, so none can take it before the bind.
            #expect(port < ephemeralStart)
        }
        // And it is free: a listener binds it.
        let port = try Loopback.freePort()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        let address = Loopback.address(port: port)
        let bound = withUnsafePointer(to: address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        #expect(bound && listen(fd, 1) == 0)
    }
}

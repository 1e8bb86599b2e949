import Testing
import ZeroMQ

@Suite(.timeLimit(.minutes(5))) struct SocketTests {
    @Test func tcpMessageCarriesTheDescriptorItCameIn() throws {
        let harness = try Harness()
        defer { harness.close() }
        let server = try harness.socket(.router)
        try server.bind("tcp://127.0.0.1:*")
        let client = try harness.socket(.dealer)
        try client.connect(try server.lastEndpoint)
        try client.send([Array("hello".utf8), Array("world".utf8)])

        let message = try #require(try receive(server))
        let fd = try #require(message.sourceFD)
        #expect(peerAddress(ofFD: fd)?.hasPrefix("127.0.0.1:") == true)
        #expect(message.userId == nil)
    }

    @Test func inprocMessageHasNoDescriptor() throws {
        let harness = try Harness()
        defer { harness.close() }
        let server = try harness.socket(.router)
        try server.bind("inproc://socket-tests")
        let client = try harness.socket(.dealer)
        try client.connect("inproc://socket-tests")
        try client.send([Array("hello".utf8)])

        let message = try #require(try receive(server))
        #expect(message.sourceFD == nil)
    }

    @Test func peerAddressOfANonSocketIsNil() throws {
        let wakeup = Wakeup()
        #expect(peerAddress(ofFD: wakeup.fileDescriptor) == nil)
        #expect(!dropConnection(fd: wakeup.fileDescriptor))
    }
}

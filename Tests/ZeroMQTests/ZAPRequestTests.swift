import Testing
import ZeroMQ

@Suite(.timeLimit(.minutes(5))) struct ZAPRequestTests {
    private func frames(mechanism: String, credentials: [[UInt8]], version: String = "1.0") -> [[UInt8]] {
        [Array(version.utf8), Array("7".utf8), Array("rujuk".utf8), Array("10.0.0.5".utf8), [], Array(mechanism.utf8)] + credentials
    }

    @Test func parsesACurveRequest() throws {
        let pair = try CurveKeyPair.generate()
        let request = try ZAPRequest(frames: frames(mechanism: "CURVE", credentials: [try Z85.decode(pair.publicKey)]))
        #expect(request.requestId == Array("7".utf8))
        #expect(request.domain == "rujuk")
        #expect(request.address == "10.0.0.5")
        #expect(request.routingId.isEmpty)
        #expect(request.mechanism == .curve)
        #expect(request.clientKey == pair.publicKey)
    }

    @Test func parsesAPlainRequestWithoutAKey() throws {
        let request = try ZAPRequest(frames: frames(mechanism: "PLAIN", credentials: [Array("user".utf8), Array("secret".utf8)]))
        #expect(request.mechanism == .plain)
        #expect(request.credentials.count == 2)
        #expect(request.clientKey == nil)
    }

    @Test func refusesMalformedRequests() {
        #expect(throws: ZMQError.self) { try ZAPRequest(frames: Array(frames(mechanism: "NULL", credentials: []).prefix(5))) }
        #expect(throws: ZMQError.self) { try ZAPRequest(frames: frames(mechanism: "NULL", credentials: [], version: "2.0")) }
        #expect(throws: ZMQError.self) { try ZAPRequest(frames: frames(mechanism: "CURVE", credentials: [[UInt8](repeating: 1, count: 31)])) }
    }
}

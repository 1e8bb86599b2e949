import Testing
import ZeroMQ

@Suite(.timeLimit(.minutes(5))) struct Z85Tests {
    @Test func encodesTheRFC32Example() throws {
        let bytes: [UInt8] = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B]
        #expect(try Z85.encode(bytes) == "HelloWorld")
        #expect(try Z85.decode("HelloWorld") == bytes)
    }

    @Test(arguments: [0, 4, 32, 64, 400])
    func roundTripsAnyMultipleOfFourBytes(count: Int) throws {
        let bytes = (0..<count).map { _ in UInt8.random(in: 0...255) }
        let text = try Z85.encode(bytes)
        #expect(text.utf8.count == count / 4 * 5)
        #expect(try Z85.decode(text) == bytes)
    }

    @Test func refusesALengthThatIsNotAMultipleOfFour() {
        #expect(throws: ZMQError.self) { try Z85.encode([1, 2, 3]) }
    }

    @Test(arguments: ["abcd", "Hello\u{0}orld", "~~~~~", "Hello Worl", "%nSc1", "HelloWörld"])
    func refusesTextThatIsNotZ85(text: String) {
        #expect(throws: ZMQError.self) { try Z85.decode(text) }
    }
}

import Testing
import ZeroMQ

@Suite(.timeLimit(.minutes(5))) struct CurveKeyPairTests {
    @Test func generatedPairsAreValidAndDistinct() throws {
        let first = try CurveKeyPair.generate()
        let second = try CurveKeyPair.generate()
        #expect(CurveKeyPair.isValid(first.publicKey))
        #expect(CurveKeyPair.isValid(first.secretKey))
        #expect(first.publicKey != second.publicKey)
        #expect(first.secretKey != second.secretKey)
    }

    @Test func publicKeyIsDerivedFromTheSecretKey() throws {
        let pair = try CurveKeyPair.generate()
        #expect(try CurveKeyPair(secretKey: pair.secretKey) == pair)
        // The server pair of libzmq's own CURVE tests.
        #expect(try CurveKeyPair.publicKey(forSecret: "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6") == "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")
    }

    @Test(arguments: ["", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7A", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]y~7"])
    func malformedKeyIsInvalid(key: String) {
        #expect(!CurveKeyPair.isValid(key))
        #expect(throws: ZMQError.self) { try CurveKeyPair.publicKey(forSecret: key) }
    }

    @Test func descriptionShowsOnlyThePublicKey() throws {
        let pair = try CurveKeyPair.generate()
        #expect(String(describing: pair).contains(pair.publicKey))
        #expect(!String(describing: pair).contains(pair.secretKey))
        #expect(!String(reflecting: pair).contains(pair.secretKey))
    }

    @Test func socketRefusesMalformedCurveSettings() throws {
        let harness = try Harness()
        defer { harness.close() }
        let socket = try harness.socket(.router)
        let pair = try CurveKeyPair.generate()
        #expect(throws: ZMQError.self) { try socket.makeCurveServer(secretKey: "not a key", zapDomain: "rujuk") }
        #expect(throws: ZMQError.self) { try socket.makeCurveServer(secretKey: pair.secretKey, zapDomain: "") }
        #expect(throws: ZMQError.self) {
            try socket.makeCurveClient(serverKey: pair.publicKey, publicKey: "short", secretKey: pair.secretKey)
        }
    }
}

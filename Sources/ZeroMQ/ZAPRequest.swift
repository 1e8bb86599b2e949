import CZeroMQ

/// One ZAP 1.0 request (RFC 27): a server socket asking whether a peer that is handshaking
/// with it may connect.
public struct ZAPRequest: Sendable {
    /// A security mechanism as ZAP names it.
    public struct Mechanism: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// No security: the peer is not identified. ZAP asks only when the server has a domain.
        public static let null = Mechanism(rawValue: "NULL")
        /// User name and password, in clear text.
        public static let plain = Mechanism(rawValue: "PLAIN")
        /// CurveZMQ: the peer proved it holds the secret half of `clientKey`.
        public static let curve = Mechanism(rawValue: "CURVE")
        /// Kerberos.
        public static let gssapi = Mechanism(rawValue: "GSSAPI")

        public var description: String { rawValue }
    }

    /// Echoed in the reply so that the server can match it to the handshake.
    public var requestId: [UInt8]
    /// The server socket's `ZMQ_ZAP_DOMAIN`.
    public var domain: String
    /// The peer's IP address, without the port.
    public var address: String
    /// The peer's routing id (`ZMQ_ROUTING_ID`), usually empty.
    public var routingId: [UInt8]
    public var mechanism: Mechanism
    /// The mechanism's credential frames as sent: none for NULL, user name and password for
    /// PLAIN, the 32-byte public key for CURVE.
    public var credentials: [[UInt8]]
    /// For CURVE, the client's long-term public key as Z85 (40 characters).
    public var clientKey: String?

    /// Parses the frames a ZAP handler receives.
    ///
    /// - Throws: `ZMQError` with EPROTO when the frames are not a ZAP 1.0 request.
    public init(frames: [[UInt8]]) throws {
        guard frames.count >= 6 else { throw Self.malformed("\(frames.count) frames") }
        guard frames[0] == Array(ZAP.version.utf8) else { throw Self.malformed("version is not 1.0") }
        requestId = frames[1]
        domain = String(decoding: frames[2], as: UTF8.self)
        address = String(decoding: frames[3], as: UTF8.self)
        routingId = frames[4]
        mechanism = Mechanism(rawValue: String(decoding: frames[5], as: UTF8.self))
        credentials = Array(frames.dropFirst(6))
        if mechanism == .curve {
            guard credentials.count == 1, credentials[0].count == 32 else {
                throw Self.malformed("CURVE credentials are not one 32-byte key")
            }
            clientKey = try Z85.encode(credentials[0])
        }
    }

    private static func malformed(_ why: String) -> ZMQError {
        ZMQError(code: EPROTO, operation: "ZAP request: \(why)")
    }
}

/// ZAP's constants and reply format (RFC 27).
enum ZAP {
    /// Where libzmq's server sockets send their requests, in their own context.
    static let endpoint = "inproc://zeromq.zap.01"
    static let version = "1.0"

    /// A reply: version, request id, status code, status text, user id, metadata (none).
    ///
    /// - Parameter status: 200 admits the peer as `userId`, 300 is a temporary failure,
    ///   400 refuses the peer, 500 reports a handler error.
    static func reply(to requestId: [UInt8], status: Int, text: String, userId: String = "") -> [[UInt8]] {
        [Array(version.utf8), requestId, Array(String(status).utf8), Array(text.utf8), Array(userId.utf8), []]
    }
}

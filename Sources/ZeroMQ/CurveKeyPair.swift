import CZeroMQ

/// A CurveZMQ long-term key pair (RFC 26), both halves as 40-character Z85 text.
///
/// The public key identifies a peer: servers list their clients' public keys, clients pin the
/// server's. The secret key never leaves the machine it was generated on, so `description`
/// prints only the public half.
public struct CurveKeyPair: Sendable, Hashable, CustomStringConvertible {
    /// The public key, Z85, 40 characters.
    public let publicKey: String
    /// The secret key, Z85, 40 characters.
    public let secretKey: String

    /// The pair for a secret key, its public half derived with `zmq_curve_public`.
    ///
    /// - Throws: `ZMQError` with EINVAL when `secretKey` is not a valid Z85 key.
    public init(secretKey: String) throws {
        self.publicKey = try Self.publicKey(forSecret: secretKey)
        self.secretKey = secretKey
    }

    private init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// A new random pair (`zmq_curve_keypair`).
    ///
    /// - Throws: `ZMQError` with ENOTSUP when libzmq was built without CURVE.
    public static func generate() throws -> CurveKeyPair {
        var publicKey = [CChar](repeating: 0, count: 41)
        var secretKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else { throw ZMQError.last("zmq_curve_keypair") }
        return CurveKeyPair(publicKey: string(publicKey), secretKey: string(secretKey))
    }

    /// The public key that belongs to a secret key (`zmq_curve_public`).
    ///
    /// - Throws: `ZMQError` with EINVAL when `secret` is not a valid Z85 key, ENOTSUP when
    ///   libzmq was built without CURVE.
    public static func publicKey(forSecret secret: String) throws -> String {
        guard isValid(secret) else { throw ZMQError(code: EINVAL, operation: "zmq_curve_public: not a Z85 key") }
        var publicKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&publicKey, secret) == 0 else { throw ZMQError.last("zmq_curve_public") }
        return string(publicKey)
    }

    /// Whether `z85` is a well-formed key: 40 Z85 characters that decode to 32 bytes.
    ///
    /// Any 32 bytes are a usable Curve25519 key, so this is all that can be checked without
    /// a handshake.
    public static func isValid(_ z85: String) -> Bool {
        z85.utf8.count == 40 && (try? Z85.decode(z85))?.count == 32
    }

    public var description: String { "CurveKeyPair(public: \(publicKey))" }

    private static func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

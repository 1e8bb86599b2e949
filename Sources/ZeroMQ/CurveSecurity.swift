import CZeroMQ

/// `ZMQ_ZAP_ENFORCE_DOMAIN`. Debian's libzmq 4.3.4 declares it only under
/// `ZMQ_BUILD_DRAFT_API`, so the header gives Swift no symbol for it, but the library built
/// without draft API still accepts the option: `zmq_setsockopt` returns 0 and
/// `zmq_getsockopt` reads it back.
let zapEnforceDomainOption: Int32 = 93

extension Socket {
    /// Makes this socket a CurveZMQ server (RFC 26) whose clients are vetted through ZAP.
    ///
    /// Sets `ZMQ_CURVE_SERVER`, `ZMQ_CURVE_SECRETKEY`, `ZMQ_ZAP_DOMAIN` and
    /// `ZMQ_ZAP_ENFORCE_DOMAIN`. Without the last, libzmq lets every CURVE client in,
    /// unidentified, when no ZAP handler is bound in the socket's context; with it, a server
    /// that forgot its handler is closed, not open. It does not refuse such a client outright,
    /// though: it reports `handshakeFailedNoDetail` (EFAULT) and leaves the handshake hanging
    /// until `ZMQ_HANDSHAKE_IVL` (30 s by default) closes the connection; the client then
    /// reconnects and tries again, and gets in once a `ZAPHandler` admits it.
    /// Call before `bind` or `connect`: options apply to connections made afterwards.
    ///
    /// - Parameters:
    ///   - secretKey: the server's secret key, Z85; clients pin the matching public key.
    ///   - zapDomain: the domain ZAP requests carry, so that one handler can tell servers
    ///     apart. Must not be empty.
    /// - Throws: `ZMQError` with EINVAL for a malformed key or an empty domain.
    public func makeCurveServer(secretKey: String, zapDomain: String) throws {
        guard CurveKeyPair.isValid(secretKey) else {
            throw ZMQError(code: EINVAL, operation: "CURVE server: the secret key is not a Z85 key")
        }
        guard !zapDomain.isEmpty else {
            throw ZMQError(code: EINVAL, operation: "CURVE server: empty ZAP domain")
        }
        try set(ZMQ_CURVE_SERVER, Int32(1))
        try set(ZMQ_CURVE_SECRETKEY, string: secretKey)
        try set(ZMQ_ZAP_DOMAIN, string: zapDomain)
        try set(zapEnforceDomainOption, Int32(1))
    }

    /// Makes this socket a CurveZMQ client of the server whose public key is `serverKey`.
    ///
    /// The handshake fails unless the server holds the secret half of `serverKey` and its ZAP
    /// handler admits `publicKey`. A ZAP refusal ends that `connect` for good: libzmq does not
    /// reconnect after it (see `ZAPHandler`). Call before `connect`.
    ///
    /// - Throws: `ZMQError` with EINVAL when a key is malformed.
    public func makeCurveClient(serverKey: String, publicKey: String, secretKey: String) throws {
        for (name, key) in [("server key", serverKey), ("public key", publicKey), ("secret key", secretKey)] {
            guard CurveKeyPair.isValid(key) else {
                throw ZMQError(code: EINVAL, operation: "CURVE client: the \(name) is not a Z85 key")
            }
        }
        try set(ZMQ_CURVE_SERVERKEY, string: serverKey)
        try set(ZMQ_CURVE_PUBLICKEY, string: publicKey)
        try set(ZMQ_CURVE_SECRETKEY, string: secretKey)
    }
}

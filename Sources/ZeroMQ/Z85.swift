import CZeroMQ

/// Z85, the printable encoding ZeroMQ uses for CURVE keys (RFC 32): every 4 bytes become 5
/// characters from an 85-character alphabet that needs no quoting in config files or shells.
public enum Z85 {
    /// Encodes bytes whose count is a multiple of 4 (`zmq_z85_encode`).
    ///
    /// - Throws: `ZMQError` with EINVAL when the count is not a multiple of 4.
    public static func encode(_ bytes: [UInt8]) throws -> String {
        guard bytes.count % 4 == 0 else {
            throw ZMQError(code: EINVAL, operation: "z85 encode: \(bytes.count) bytes is not a multiple of 4")
        }
        var text = [CChar](repeating: 0, count: bytes.count / 4 * 5 + 1)
        let result = bytes.withUnsafeBufferPointer { zmq_z85_encode(&text, $0.baseAddress, $0.count) }
        guard result != nil else { throw ZMQError.last("z85 encode") }
        return String(decoding: text.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Decodes text whose length is a multiple of 5 (`zmq_z85_decode`).
    ///
    /// - Throws: `ZMQError` with EINVAL when the length is wrong or a character is outside the
    ///   Z85 alphabet.
    public static func decode(_ text: String) throws -> [UInt8] {
        let characters = Array(text.utf8)
        // libzmq reads a C string, so a NUL would silently shorten the input. It refuses
        // characters outside the alphabet and groups that overflow 32 bits itself.
        guard characters.count % 5 == 0, !characters.contains(0) else {
            throw ZMQError(code: EINVAL, operation: "z85 decode: not Z85 text")
        }
        // libzmq refuses empty text, though it encodes no bytes as that.
        if characters.isEmpty { return [] }
        var bytes = [UInt8](repeating: 0, count: characters.count / 5 * 4)
        let result = text.withCString { zmq_z85_decode(&bytes, $0) }
        guard result != nil else { throw ZMQError.last("z85 decode") }
        return bytes
    }
}

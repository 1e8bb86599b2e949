import Foundation

/// A file that holds one secret (an API token): readable by its owner alone, like a key file.
public enum SecretFile {
    /// The secret in `url`, trimmed; refuses a file that others can read (the secret may have
    /// been read, so it must be replaced, not quietly narrowed) or one that is empty.
    public static func read(_ url: URL, what: String) throws -> String {
        var status = stat()
        guard stat(url.path, &status) == 0 else {
            throw ConfigError(file: url.path, line: 0, message: "cannot read the \(what): \(String(cString: strerror(errno)))")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw ConfigError(file: url.path, line: 0, message: String(
                format: "the %@ is readable by others (mode %o); make a new one, the old one may have been read", what, status.st_mode & 0o777))
        }
        let text = try String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw ConfigError(file: url.path, line: 0, message: "the \(what) is empty") }
        return text
    }

    /// Writes `secret` to a new file created with mode 0600 (never, even for a moment, with
    /// another), and syncs it; refuses to replace a file that exists.
    public static func create(_ url: URL, secret: String) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = errno == EEXIST ? "already exists; remove it first if you mean to replace it" : String(cString: strerror(errno))
            throw ConfigError(file: url.path, line: 0, message: reason)
        }
        defer { close(fd) }
        let bytes = Array((secret + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count, fsync(fd) == 0 else {
            throw ConfigError(file: url.path, line: 0, message: "cannot write: \(String(cString: strerror(errno)))")
        }
    }

    /// 32 random bytes from the system's CSPRNG, as 64 hex digits.
    public static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}

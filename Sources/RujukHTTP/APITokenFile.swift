import Foundation
import RujukCore

/// The file holding an API's bearer token: secret like a key file, so refused when others can
/// read it, and created mode 0600 from its first byte.
public enum APITokenFile {
    /// The token in `url`, or nil when there is no such file (or it is empty).
    public static func load(_ url: URL) throws -> String? {
        var info = stat()
        guard stat(url.path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw ConfigError(file: url.path, line: 0, message: "cannot read the API token file: \(String(cString: strerror(errno)))")
        }
        let mode = Int(info.st_mode) & 0o777
        if mode & 0o077 != 0 {
            throw ConfigError(file: url.path, line: 0, message: String(
                format: "the API token file is readable by others (mode %o); run chmod 600 on it, or remove it for a new token", mode))
        }
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw ConfigError(file: url.path, line: 0, message: "cannot read the API token file (\(error.localizedDescription))")
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return token.isEmpty ? nil : token
    }

    /// Writes a new random token to `url`: into a temporary file beside it, opened with
    /// O_CREAT|O_EXCL and mode 0600 (never readable by others, not even for an instant),
    /// synced, then renamed into place so that a crash never leaves half a token.
    public static func create(_ url: URL) throws -> String {
        var generator = SystemRandomNumberGenerator()
        let token = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString)")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw ConfigError(file: temporary.path, line: 0, message: "cannot create the API token file: \(String(cString: strerror(errno)))")
        }
        let bytes = Array(token.utf8)
        let written = Foundation.write(fd, bytes, bytes.count) == bytes.count && fsync(fd) == 0
        let reason = String(cString: strerror(errno))
        close(fd)
        guard written else {
            unlink(temporary.path)
            throw ConfigError(file: temporary.path, line: 0, message: "cannot write the API token file: \(reason)")
        }
        FaultPoint.tokenFileWritten.reached()
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary.path)
            throw ConfigError(file: url.path, line: 0, message: "cannot put the API token file in place: \(reason)")
        }
        return token
    }

    /// The token in `url`, written there first if there is none.
    public static func loadOrCreate(_ url: URL) throws -> String {
        try load(url) ?? create(url)
    }
}

import Foundation
import RujukCore

/// The file holding an API's bearer token: secret like a key file (`SecretFile`), so refused
/// when others can read it, and created mode 0600 from its first byte.
public enum APITokenFile {
    /// The token in `url`, or nil when there is no such file.
    public static func load(_ url: URL) throws -> String? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try SecretFile.read(url, what: "API token file")
    }

    /// Writes a new random token to `url`: into a temporary file beside it, created mode 0600
    /// and synced, then renamed into place so that a crash never leaves half a token.
    public static func create(_ url: URL) throws -> String {
        let token = SecretFile.randomToken()
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString)")
        try SecretFile.create(temporary, secret: token)
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

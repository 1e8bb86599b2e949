import Foundation

/// The text forms of Rujuk's keys.
public enum KeyText {
    static let z85Alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)

    /// A CurveZMQ key as Z85: 40 characters of the Z85 alphabet (32 bytes).
    public static func isZ85Key(_ text: String) -> Bool {
        text.utf8.count == 40 && text.utf8.allSatisfy { z85Alphabet.contains($0) }
    }

    /// A 32-byte key in standard base64 (44 characters with one `=`).
    public static func isBase64Key(_ text: String) -> Bool {
        ReferralValidation.base64Length(text) == 32
    }
}

/// A secret key file as `rujuk keygen` writes it: TOML, mode 0600, holding the CurveZMQ key
/// pair (Z85) and, for an agency, the sealing key pair (X25519, base64); for the broker, the
/// key pair that signs its audit checkpoints (Ed25519, base64).
///
/// ```toml
/// # rujuk key file for agency polda-kepri — secret: keep it mode 0600, never copy it elsewhere
/// owner = "polda-kepri"
/// curve_public = "…40 Z85 characters…"
/// curve_secret = "…"
/// seal_public = "…base64…"
/// seal_secret = "…"
/// sign_public = "…base64…"   # the broker's
/// sign_secret = "…"
/// ```
public struct KeyFile: Sendable, Equatable {
    /// The agency id, or `broker`.
    public var owner: String
    public var curvePublic: String
    public var curveSecret: String
    /// Agencies only: the broker seals nothing and opens nothing.
    public var sealPublic: String?
    public var sealSecret: String?
    /// The broker's checkpoint signing pair (Ed25519, the raw 32 bytes in base64). A broker
    /// key file made before checkpoints existed has none: that broker sends no checkpoints.
    public var signPublic: String?
    public var signSecret: String?

    public init(owner: String, curvePublic: String, curveSecret: String, sealPublic: String? = nil, sealSecret: String? = nil,
                signPublic: String? = nil, signSecret: String? = nil) {
        self.owner = owner
        self.curvePublic = curvePublic
        self.curveSecret = curveSecret
        self.sealPublic = sealPublic
        self.sealSecret = sealSecret
        self.signPublic = signPublic
        self.signSecret = signSecret
    }

    /// Reads a key file; refuses one that others can read (as ssh does), a malformed key, or
    /// one that belongs to someone else.
    public static func load(_ url: URL, owner expected: String? = nil) throws -> KeyFile {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path) else {
            throw ConfigError(file: url.path, line: 0, message: "no key file here; make one with `rujuk keygen`")
        }
        if let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue, mode & 0o077 != 0 {
            throw ConfigError(file: url.path, line: 0, message: String(format: "the key file is readable by others (mode %o); run chmod 600 on it", mode))
        }
        let reader = try ConfigReader.load(url)
        try reader.allowOnly(["owner", "curve_public", "curve_secret", "seal_public", "seal_secret", "sign_public", "sign_secret"])
        let file = KeyFile(
            owner: try reader.requiredString("owner"), curvePublic: try reader.requiredString("curve_public"),
            curveSecret: try reader.requiredString("curve_secret"), sealPublic: try reader.string("seal_public"),
            sealSecret: try reader.string("seal_secret"), signPublic: try reader.string("sign_public"),
            signSecret: try reader.string("sign_secret"))
        for (key, value) in [("curve_public", file.curvePublic), ("curve_secret", file.curveSecret)] where !KeyText.isZ85Key(value) {
            throw reader.error(key, "must be 40 Z85 characters")
        }
        let optional = [("seal_public", file.sealPublic), ("seal_secret", file.sealSecret),
                        ("sign_public", file.signPublic), ("sign_secret", file.signSecret)]
        for (key, value) in optional {
            if let value, !KeyText.isBase64Key(value) { throw reader.error(key, "must be 32 bytes in base64") }
        }
        if (file.sealPublic == nil) != (file.sealSecret == nil) {
            throw reader.error(nil, "seal_public and seal_secret go together")
        }
        if (file.signPublic == nil) != (file.signSecret == nil) {
            throw reader.error(nil, "sign_public and sign_secret go together")
        }
        if let expected, file.owner != expected {
            throw reader.error("owner", "this key file belongs to '\(file.owner)', not '\(expected)'")
        }
        return file
    }

    /// The file's text.
    public var text: String {
        var lines = [
            "# Rujuk key file for \(owner == "broker" ? "the broker" : "agency \(owner)"). SECRET: keep it mode 0600 on this machine only.",
            "# The public halves go into agencies.toml (agencies) or every adapter's broker_key and",
            "# broker_sign_key (the broker).",
            "owner = \"\(owner)\"",
            "curve_public = \"\(curvePublic)\"",
            "curve_secret = \"\(curveSecret)\"",
        ]
        if let sealPublic, let sealSecret {
            lines += ["seal_public = \"\(sealPublic)\"", "seal_secret = \"\(sealSecret)\""]
        }
        if let signPublic, let signSecret {
            lines += ["sign_public = \"\(signPublic)\"", "sign_secret = \"\(signSecret)\""]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes the file with mode 0600, created that way (never readable by others, not even
    /// for an instant); refuses to overwrite an existing file.
    public func write(to url: URL) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            let reason = errno == EEXIST ? "already exists; remove it first if you mean to replace this key" : String(cString: strerror(errno))
            throw ConfigError(file: url.path, line: 0, message: reason)
        }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard Foundation.write(fd, bytes, bytes.count) == bytes.count, fsync(fd) == 0 else {
            throw ConfigError(file: url.path, line: 0, message: "cannot write the key file: \(String(cString: strerror(errno)))")
        }
    }

    /// Replaces an existing key file with this one in a single step (a new file beside it,
    /// written as `write` does, renamed over it): a crash leaves the old file or the new one,
    /// never half of either. For adding a key the file lacked, keeping those it had.
    public func replace(at url: URL) throws {
        let next = url.appendingPathExtension("new")
        try write(to: next)
        guard rename(next.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(next.path)
            throw ConfigError(file: url.path, line: 0, message: "cannot replace the key file: \(reason)")
        }
    }
}

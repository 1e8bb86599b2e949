import HTTPTypes
import Hummingbird
import NIOCore

/// What every HTML page a Rujuk process serves shares: text escaped for HTML, and the headers
/// that keep a page from running script it did not ship, being framed, or leaking its address.
public enum HTMLPage {
    /// No inline script or style, nothing from another origin, no framing, no plugins: markup
    /// that slipped past escaping still cannot run.
    public static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        + "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    /// `text` with `&`, `<`, `>`, `"` and `'` replaced by character references, for element
    /// content and quoted attribute values alike.
    ///
    /// Byte by byte over UTF-8, not by `Character`: a grapheme cluster can join `<` to a
    /// combining mark after it or a prepended character before it (`"\u{600}<"`), and a
    /// comparison of whole Characters would then let it through unescaped.
    public static func escape(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "&"): out.append(contentsOf: "&amp;".utf8)
            case UInt8(ascii: "<"): out.append(contentsOf: "&lt;".utf8)
            case UInt8(ascii: ">"): out.append(contentsOf: "&gt;".utf8)
            case UInt8(ascii: "\""): out.append(contentsOf: "&quot;".utf8)
            case UInt8(ascii: "'"): out.append(contentsOf: "&#39;".utf8)
            default: out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The headers of every HTML page and of the files it loads.
    public static func headers(contentType: String) -> HTTPFields {
        [
            .contentType: contentType,
            .cacheControl: "no-store",
            .contentSecurityPolicy: contentSecurityPolicy,
            HTTPField.Name("X-Frame-Options")!: "DENY",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            HTTPField.Name("Referrer-Policy")!: "no-referrer",
        ]
    }

    /// A response with `text` and the page headers.
    public static func response(_ text: String, contentType: String = "text/html; charset=utf-8") -> Response {
        Response(status: .ok, headers: headers(contentType: contentType), body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

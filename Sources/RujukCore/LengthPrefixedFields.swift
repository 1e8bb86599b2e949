import Foundation

/// Text fields made into one byte string that cannot be read two ways: each field as its UTF-8
/// byte length in decimal, `:`, its UTF-8 bytes, and LF (Protocols/RRP.md sections 9.2, 4.13).
///
/// What is sealed or signed over such a string binds each field to its place: text moved from
/// one field to the next (a regency and a reason may both hold a line break) changes the bytes.
public enum LengthPrefixedFields {
    public static func encode(_ fields: [String], capacity: Int = 512) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(capacity)
        for field in fields {
            // Appended from the UTF-8 views: no array per field on the way (this runs for every
            // referral sealed and opened).
            bytes.append(contentsOf: String(field.utf8.count).utf8)
            bytes.append(UInt8(ascii: ":"))
            bytes.append(contentsOf: field.utf8)
            bytes.append(UInt8(ascii: "\n"))
        }
        return bytes
    }
}

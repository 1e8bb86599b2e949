#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Message ids are UUIDv7 (RFC 9562), chosen by the sender: time-ordered, so a store's index
/// on them stays append-mostly, and random enough that two agencies never collide.
public enum MessageID {
    /// A new UUIDv7 string, lowercase, for the current time.
    public static func make(at date: Date = Date()) -> String {
        let milliseconds = UInt64(max(0, date.timeIntervalSince1970 * 1000))
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in 0..<6 {
            bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (40 - 8 * UInt64(index)))
        }
        let random = randomWords()
        for index in 6..<16 {
            let word = index < 11 ? random.0 : random.1
            bytes[index] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(index % 8)))
        }
        bytes[6] = 0x70 | (bytes[6] & 0x0F)  // version 7
        bytes[8] = 0x80 | (bytes[8] & 0x3F)  // RFC 9562 variant
        return format(bytes)
    }

    /// 128 random bits from one system call: `SystemRandomNumberGenerator` makes a `getrandom`
    /// call per 64 bits, and ids are made on the hot path (each handoff's `received` event, at
    /// the broker and at the recipient).
    private static func randomWords() -> (UInt64, UInt64) {
        var words: (UInt64, UInt64) = (0, 0)
        #if canImport(Glibc) || canImport(Darwin)
        if withUnsafeMutableBytes(of: &words, { getentropy($0.baseAddress, $0.count) }) == 0 { return words }
        #endif
        var generator = SystemRandomNumberGenerator()
        words = (generator.next(), generator.next())
        return words
    }

    /// Whether `text` is a lowercase or uppercase UUID of version 7 in canonical 8-4-4-4-12 form.
    public static func isValid(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        guard utf8.count == 36 else { return false }
        for (index, char) in utf8.enumerated() {
            switch index {
            case 8, 13, 18, 23:
                if char != UInt8(ascii: "-") { return false }
            default:
                guard isHex(char) else { return false }
            }
        }
        return utf8[14] == UInt8(ascii: "7") && [UInt8(ascii: "8"), UInt8(ascii: "9"), UInt8(ascii: "a"), UInt8(ascii: "b"), UInt8(ascii: "A"), UInt8(ascii: "B")].contains(utf8[19])
    }

    private static func isHex(_ char: UInt8) -> Bool {
        (char >= 48 && char <= 57) || (char >= 97 && char <= 102) || (char >= 65 && char <= 70)
    }

    private static func format(_ bytes: [UInt8]) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { out.append(UInt8(ascii: "-")) }
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

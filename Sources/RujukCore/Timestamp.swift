import Foundation

/// The wire form of instants: RFC 3339 in UTC with milliseconds, `2026-11-23T09:30:00.000Z`.
///
/// Written by hand rather than with `ISO8601DateFormatter` because the broker formats and
/// parses several of these per message on its hot path.
public enum Timestamp {
    public static func format(_ date: Date) -> String {
        let fields = Fields(date)
        guard fields.fitsFourDigits else { return fields.formatted }
        // 24 ASCII bytes written in place: this runs several times per referral.
        return String(unsafeUninitializedCapacity: 24) { fields.write(into: $0); return 24 }
    }

    /// Appends `format(date)`'s bytes, without making the string: a JSON writer puts several
    /// instants into every notification.
    public static func append(_ date: Date, to bytes: inout [UInt8]) {
        let fields = Fields(date)
        guard fields.fitsFourDigits else { bytes.append(contentsOf: fields.formatted.utf8); return }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { buffer in
            fields.write(into: buffer)
            bytes.append(contentsOf: UnsafeBufferPointer(buffer))
        }
    }

    /// An instant's calendar fields in UTC, to the millisecond.
    private struct Fields {
        var year, month, day, hour, minute, second, millisecond: Int64

        init(_ date: Date) {
            let totalMilliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
            var days = totalMilliseconds >= 0 ? totalMilliseconds / 86_400_000 : (totalMilliseconds - 86_399_999) / 86_400_000
            var remainder = totalMilliseconds - days * 86_400_000
            hour = remainder / 3_600_000; remainder %= 3_600_000
            minute = remainder / 60_000; remainder %= 60_000
            second = remainder / 1000
            millisecond = remainder % 1000
            // Civil-from-days (Howard Hinnant's algorithm).
            days += 719_468
            let era = (days >= 0 ? days : days - 146_096) / 146_097
            let dayOfEra = days - era * 146_097
            let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
            year = yearOfEra + era * 400
            let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
            let mp = (5 * dayOfYear + 2) / 153
            day = dayOfYear - (153 * mp + 2) / 5 + 1
            month = mp < 10 ? mp + 3 : mp - 9
            if month <= 2 { year += 1 }
        }

        var fitsFourDigits: Bool { (0...9999).contains(year) }

        /// Any year, through `String(format:)`.
        var formatted: String {
            String(format: "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lldZ", year, month, day, hour, minute, second, millisecond)
        }

        /// The 24 bytes, for a year of four digits, into a buffer of at least 24.
        func write(into buffer: UnsafeMutableBufferPointer<UInt8>) {
            func put(_ value: Int64, _ width: Int, at offset: Int) {
                var value = value
                for index in stride(from: offset + width - 1, through: offset, by: -1) {
                    buffer[index] = UInt8(truncatingIfNeeded: 48 + value % 10)
                    value /= 10
                }
            }
            put(year, 4, at: 0); buffer[4] = UInt8(ascii: "-")
            put(month, 2, at: 5); buffer[7] = UInt8(ascii: "-")
            put(day, 2, at: 8); buffer[10] = UInt8(ascii: "T")
            put(hour, 2, at: 11); buffer[13] = UInt8(ascii: ":")
            put(minute, 2, at: 14); buffer[16] = UInt8(ascii: ":")
            put(second, 2, at: 17); buffer[19] = UInt8(ascii: ".")
            put(millisecond, 3, at: 20); buffer[23] = UInt8(ascii: "Z")
        }
    }

    /// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, in seconds since 1970.
    static let earliest: Int64 = -62_167_219_200
    static let latest: Int64 = 253_402_300_799

    static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z` or with a `±HH:MM` offset; nil if it is not one.
    public static func parse(_ text: String) -> Date? {
        var text = text
        // In place over the UTF-8 bytes: this runs for every date of every message.
        return text.withUTF8 { parse(utf8: $0) }
    }

    static func parse(utf8 c: UnsafeBufferPointer<UInt8>) -> Date? {
        guard c.count >= 20 else { return nil }
        func number(_ from: Int, _ count: Int) -> Int64? {
            var value: Int64 = 0
            for index in from..<(from + count) {
                guard index < c.count, c[index] >= 48, c[index] <= 57 else { return nil }
                value = value * 10 + Int64(c[index] - 48)
            }
            return value
        }
        guard let year = number(0, 4), c[4] == UInt8(ascii: "-"), let month = number(5, 2), c[7] == UInt8(ascii: "-"),
              let day = number(8, 2), c[10] == UInt8(ascii: "T") || c[10] == UInt8(ascii: "t"),
              let hour = number(11, 2), c[13] == UInt8(ascii: ":"), let minute = number(14, 2),
              c[16] == UInt8(ascii: ":"), let second = number(17, 2),
              (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var milliseconds: Int64 = 0
        if index < c.count, c[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < c.count, c[index] >= 48, c[index] <= 57 {
                if digits < 3 { milliseconds = milliseconds * 10 + Int64(c[index] - 48) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in 0..<max(0, 3 - digits) { milliseconds *= 10 }
        }
        var offsetSeconds: Int64 = 0
        guard index < c.count else { return nil }
        if c[index] == UInt8(ascii: "Z") || c[index] == UInt8(ascii: "z") {
            index += 1
        } else if c[index] == UInt8(ascii: "+") || c[index] == UInt8(ascii: "-") {
            let sign: Int64 = c[index] == UInt8(ascii: "+") ? 1 : -1
            guard let offsetHours = number(index + 1, 2), index + 3 < c.count, c[index + 3] == UInt8(ascii: ":"),
                  let offsetMinutes = number(index + 4, 2), offsetHours < 24, offsetMinutes < 60 else { return nil }
            offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
            index += 6
        } else {
            return nil
        }
        guard index == c.count else { return nil }
        // Days-from-civil (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        let seconds = days * 86400 + hour * 3600 + minute * 60 + second - offsetSeconds
        // An offset can move the instant out of the years 0000-9999 (0000-01-01T00:00+23:59),
        // which `format` cannot write back as RFC 3339: refused, like any other bad date.
        guard seconds >= Self.earliest, seconds <= Self.latest else { return nil }
        return Date(timeIntervalSince1970: Double(seconds) + Double(milliseconds) / 1000)
    }
}

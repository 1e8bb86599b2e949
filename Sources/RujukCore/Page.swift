import Foundation

/// One page of a list that an HTTP API serves: at most `limit` items, and a cursor for the next
/// page when there may be more. Every list is bounded, so no request can make a process read
/// or send an unbounded number of rows.
public struct PageRequest: Sendable, Equatable {
    /// How many items a page holds at most.
    public var limit: Int
    /// Where the page starts: the sort key of the last item of the page before, or nil.
    public var after: PageCursor?

    public init(limit: Int, after: PageCursor? = nil) {
        self.limit = limit
        self.after = after
    }

    /// `limit` and `cursor` as a query gives them: a limit must be a whole number from 1 to
    /// `maximum` (absent: `defaultLimit`), a cursor one this API made.
    public static func parse(limit: String?, cursor: String?, defaultLimit: Int, maximum: Int) throws -> PageRequest {
        let count: Int
        if let limit {
            guard let value = Int(limit), (1...maximum).contains(value) else {
                throw RujukError(.badParameter, "'limit' must be a whole number from 1 to \(maximum)")
            }
            count = value
        } else {
            count = defaultLimit
        }
        return PageRequest(limit: count, after: try cursor.map(PageCursor.init(token:)))
    }

    /// The page from `rows` read with a limit of `limit + 1`: the first `limit`, and the cursor
    /// of the last of them when a row beyond it shows there is more.
    public func page<Row>(_ rows: [Row], key: (Row) -> [String]) -> (items: ArraySlice<Row>, next: PageCursor?) {
        guard rows.count > limit else { return (rows[...], nil) }
        let items = rows.prefix(limit)
        return (items, items.last.map { PageCursor(key($0)) })
    }
}

/// Where a page of a list starts: the sort key of the item before it, opaque to clients
/// (base64url of the key's parts), so that pages stay right while rows are added.
public struct PageCursor: Sendable, Equatable {
    public var key: [String]

    public init(_ key: [String]) { self.key = key }

    /// Decodes a cursor a client sent back; anything this API did not make is bad input.
    public init(token: String) throws {
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard token.utf8.count <= 512, let data = Data(base64Encoded: base64),
              let text = String(data: data, encoding: .utf8), !text.isEmpty else {
            throw RujukError(.badParameter, "'cursor' is not a cursor this API gave out")
        }
        key = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    /// The cursor as a client passes it back (`?cursor=`).
    public var token: String {
        Data(key.joined(separator: "\n").utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The key, checked to have `count` parts; a cursor of another list is bad input.
    public func parts(_ count: Int) throws -> [String] {
        guard key.count == count else { throw RujukError(.badParameter, "'cursor' belongs to another list") }
        return key
    }
}

import Foundation
import Hummingbird
import NIOCore
import RujukCore

/// JSON responses in Rujuk's conventions (snake_case, RFC 3339 instants), and the error body
/// every Rujuk HTTP API uses: `{"error": {"code": "...", "reason": "..."}}`.
public enum JSONResponse {
    public static func make<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let bytes = JSONCoding.encode(value)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }

    public static func error(_ error: RujukError, status: HTTPResponse.Status? = nil) -> Response {
        struct Body: Encodable { var error: ProtocolError }
        return make(Body(error: ProtocolError(error)), status: status ?? httpStatus(for: error.code))
    }

    /// The HTTP status that goes with an error code.
    public static func httpStatus(for code: RujukError.Code) -> HTTPResponse.Status {
        switch code {
        case .badParameter: .badRequest
        case .notFound: .notFound
        case .unauthorized: .unauthorized
        case .misdirectedHost: .misdirectedRequest
        case .tooLarge: .contentTooLarge
        case .illegalTransition, .duplicateConflict: .conflict
        case .notParty, .identityMismatch: .forbidden
        case .storageUnavailable: .serviceUnavailable
        case .rateLimited: .tooManyRequests
        case .internal: .internalServerError
        default: .unprocessableContent
        }
    }

    /// Reads and decodes a JSON request body, refusing one over `limit` bytes before parsing it.
    public static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int = RRPCodec.defaultMaxMessageBytes) async throws -> T {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: limit)
        } catch {
            throw RujukError(.tooLarge, "the request body is over \(limit) bytes")
        }
        return try JSONCoding.decode(T.self, from: Array(buffer.readableBytesView), what: "request body")
    }
}

/// Turns thrown `RujukError`s into JSON error responses, and anything else into a 500 whose
/// body says nothing about the request (it could hold personal data).
public struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as RujukError {
            return JSONResponse.error(error)
        } catch let error as HTTPError {
            let code: RujukError.Code = error.status == .notFound ? .notFound : error.status == .unauthorized ? .unauthorized : .schemaViolation
            return JSONResponse.error(RujukError(code, error.body ?? error.status.reasonPhrase), status: error.status)
        } catch {
            context.logger.error("request failed", metadata: ["error.type": "\(type(of: error))"])
            return JSONResponse.error(RujukError(.internal, "internal error"))
        }
    }
}

/// Requires `Authorization: Bearer <token>` with one of the accepted tokens, each compared in
/// constant time; the tokens are asked for at each request, so a reload takes effect at once.
public struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let tokens: @Sendable () -> [String]

    public init(token: String) { self.tokens = { [token] } }

    public init(tokens: @escaping @Sendable () -> [String]) { self.tokens = tokens }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let header = request.headers[.authorization] ?? ""
        let given = header.hasPrefix("Bearer ") ? Array(header.dropFirst(7).utf8) : []
        var matched = false
        for token in tokens() where Self.same(given, Array(token.utf8)) { matched = true }
        guard matched else {
            return JSONResponse.error(RujukError(.unauthorized, "missing or wrong bearer token"))
        }
        return try await next(request, context)
    }

    /// Equal, in a time that depends on the lengths alone.
    static func same(_ given: [UInt8], _ token: [UInt8]) -> Bool {
        var difference = given.count == token.count ? 0 : 1
        for (index, byte) in token.enumerated() {
            difference |= Int(byte ^ (index < given.count ? given[index] : 0))
        }
        return difference == 0
    }
}

extension Request {
    /// A query parameter, or nil.
    public func query(_ name: String) -> String? {
        uri.queryParameters.get(name)
    }
}

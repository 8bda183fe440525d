/// An HTTP status as the request handling sees it: the code alone. Only the HTTP layer
/// (`SandboxHTTPHandler`) turns it into NIOHTTP1's `HTTPResponseStatus`, whose standard reason
/// phrase goes on the wire; so the REST calls build without NIO, as the fuzz targets need.
struct HTTPStatus: Sendable, Equatable {
    let code: Int

    static let ok = HTTPStatus(code: 200)
    static let accepted = HTTPStatus(code: 202)
    static let badRequest = HTTPStatus(code: 400)
    static let unauthorized = HTTPStatus(code: 401)
    static let notFound = HTTPStatus(code: 404)
    static let methodNotAllowed = HTTPStatus(code: 405)
    static let conflict = HTTPStatus(code: 409)
    static let gone = HTTPStatus(code: 410)
    static let payloadTooLarge = HTTPStatus(code: 413)
    static let unsupportedMediaType = HTTPStatus(code: 415)
    static let unprocessableEntity = HTTPStatus(code: 422)
    static let tooManyRequests = HTTPStatus(code: 429)
    static let internalServerError = HTTPStatus(code: 500)
    static let serviceUnavailable = HTTPStatus(code: 503)
}

/// An `error.list` answer.
struct APIError: Error, Sendable {
    var status: HTTPStatus
    var code: String
    var message: String
    var field: String?

    static func parameterInvalid(_ message: String, field: String) -> APIError {
        APIError(status: .unprocessableEntity, code: "parameter_invalid", message: message, field: field)
    }

    func body(requestID: String) -> String {
        var error: [(String, JSONValue)] = [("code", .string(code)), ("message", .string(message))]
        if let field { error.append(("field", .string(field))) }
        return JSONValue.obj([
            ("type", .string("error.list")),
            ("request_id", .string(requestID)),
            ("errors", .array([.obj(error)])),
        ]).serialized
    }
}

import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// `--dry-run` in REST mode: writes the calls a workspace that knows nobody would get, one JSON
/// line each (`{"method","path","body"}`), and answers them as that workspace would: every
/// contact is new, no company is found, every write succeeds. Intercom ids are stable
/// placeholders naming what they stand for (`{contact:external_id=u1}`), so the lines read as
/// the plan they are, and two dry runs of the same input write the same lines.
public final class RESTDryRunTransport: RESTTransport {
    private struct State {
        var file: BufferedFileWriter
        var line: [UInt8] = []
    }
    private let state: Mutex<State>

    public init(path: String) throws {
        state = Mutex(State(file: try BufferedFileWriter(path: path, capacity: 64 << 10)))
    }

    public func send(_ call: RESTCall) async throws -> IntercomResponse {
        try state.withLock { state in
            state.line.removeAll(keepingCapacity: true)
            JSONWriter.append("{\"method\":\"", to: &state.line)
            state.line.append(contentsOf: call.method.rawValue.utf8)
            JSONWriter.append("\",\"path\":", to: &state.line)
            // Placeholders read as they are: `/contacts/{contact:external_id=u1}`, not percent-encoded.
            var path = call.path.removingPercentEncoding ?? call.path
            path.withUTF8 { _ = JSONWriter.appendQuoted(UnsafeRawBufferPointer($0), to: &state.line) }
            if let body = call.body {
                JSONWriter.append(",\"body\":", to: &state.line)
                state.line.append(contentsOf: body)
            }
            JSONWriter.append("}\n", to: &state.line)
            try state.file.write(state.line)
        }
        return Self.answer(call)
    }

    public func flush() throws { try state.withLock { try $0.file.flush() } }

    /// What a workspace that knows nobody answers.
    static func answer(_ call: RESTCall) -> IntercomResponse {
        let body = call.body.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) } as? [String: Any]
        func object(_ members: [String: Any], status: Int = 200) -> IntercomResponse {
            let data = (try? JSONSerialization.data(withJSONObject: members, options: [.sortedKeys])) ?? Data("{}".utf8)
            return IntercomResponse(status: status, headers: [:], body: ByteBuffer(bytes: data))
        }
        switch call.endpoint {
        case "GET /data_attributes":
            return object(["type": "list", "data": [Any]()])
        case "POST /data_attributes":
            return object(["type": "data_attribute", "name": body?["name"] ?? "", "custom": true])
        case "POST /contacts":
            let id =
                (body?["external_id"] as? String).map { "{contact:external_id=\($0)}" }
                ?? "{contact:email=\((body?["email"] as? String) ?? "")}"
            return object(["type": "contact", "id": id])
        case "PUT /contacts/{id}":
            return object([
                "type": "contact", "id": String(call.path.dropFirst("/contacts/".count)).removingPercentEncoding ?? "",
            ])
        case "POST /companies":
            return object(["type": "company", "id": "{company:company_id=\((body?["company_id"] as? String) ?? "")}"])
        case "POST /events":
            return IntercomResponse(status: 202, headers: [:], body: ByteBuffer())
        case "GET /companies", "GET /contacts/{id}":
            return object(
                ["type": "error.list", "errors": [["code": "not_found", "message": "not found (dry run)"]]], status: 404)
        default:
            return object(["type": "ok"])
        }
    }
}

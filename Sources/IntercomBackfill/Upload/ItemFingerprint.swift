/// An item's identity as Intercom echoes it in a job's error feed: how a failed item is traced
/// back to the input line it came from.
enum ItemFingerprint {
    /// Users: `u|user_id` or `e|email`; events: `name|created_at|u|user_id` (or `e|email`).
    static func make(kind: ItemKind, userID: String?, email: String?, eventName: String?, createdAt: String?) -> UInt64 {
        let who = userID.map { "u|" + $0 } ?? email.map { "e|" + $0 } ?? "?"
        var text = kind == .user ? who : "\(eventName ?? "")|\(createdAt ?? "")|\(who)"
        return text.withUTF8 { bytes in
            var hash = StableHash()
            hash.update(UnsafeRawBufferPointer(bytes))
            return hash.value
        }
    }

    /// Fingerprints of a batch's items, in order (parsed with the project's own JSON parser).
    static func fromBatch(_ batch: Batch) -> [UInt64] {
        var result: [UInt64] = []
        result.reserveCapacity(batch.count)
        ItemScanner.forEachItemData(batch.items) { _, data in
            var parser = JSONParser()
            guard (try? parser.parse(data)) != nil else {
                result.append(0)
                return
            }
            parser.nodes.withUnsafeBufferPointer { nodes in
                let view = JSONView(bytes: data, nodes: nodes)
                let root = JSONView.root
                func text(_ key: StaticString) -> String? {
                    guard let i = view.member(root, key) else { return nil }
                    return view.isString(i) ? view.string(i) : String(decoding: view.raw(i), as: UTF8.self)
                }
                result.append(
                    make(
                        kind: batch.kind, userID: text("user_id"), email: text("email"),
                        eventName: text("event_name"), createdAt: text("created_at")))
            }
        }
        return result
    }

    /// The fingerprint of an item's `data` as decoded from an error feed.
    static func fromObject(_ data: [String: Any], kind: ItemKind) -> UInt64 {
        func text(_ key: String) -> String? {
            switch data[key] {
            case let s as String: return s
            case let n as Int: return String(n)
            case let n as Int64: return String(n)
            case let d as Double: return String(Int64(d))
            default: return nil
            }
        }
        return make(
            kind: kind, userID: text("user_id"), email: text("email"), eventName: text("event_name"),
            createdAt: text("created_at"))
    }
}

/// Walks the comma-separated item objects of a batch.
enum ItemScanner {
    /// Calls `body(index, dataBytes)` with each item's `data` object as raw JSON.
    static func forEachItemData(_ items: [UInt8], _ body: (Int, UnsafeRawBufferPointer) -> Void) {
        let wrapped: [UInt8] = [UInt8(ascii: "[")] + items + [UInt8(ascii: "]")]
        var parser = JSONParser()
        wrapped.withUnsafeBytes { bytes in
            guard (try? parser.parse(bytes)) != nil else { return }
            parser.nodes.withUnsafeBufferPointer { nodes in
                let view = JSONView(bytes: bytes, nodes: nodes)
                var index = 0
                view.forEachElement(JSONView.root) { item in
                    if let data = view.member(item, "data") {
                        let n = view.nodes[data]
                        body(index, UnsafeRawBufferPointer(rebasing: bytes[Int(n.start)..<Int(n.end)]))
                    }
                    index += 1
                }
            }
        }
    }
}

/// track -> one `/bulk/events` item (contract §4).
extension RecordMapper {
    /// Intercom keeps only the first 10 metadata keys.
    static let maxMetadataKeys = 10

    mutating func mapTrack(_ view: JSONView) -> MapOutcome {
        guard let event = fields.event, view.isString(event), !view.isEmptyString(event) else {
            return .rejected(.missingEventName, detail: "a track call needs a non-empty \"event\" string")
        }
        guard case .valid(let createdAt) = Self.recordTime(view, fields) else {
            return .rejected(.invalidTimestamp, detail: "no usable timestamp (timestamp, originalTimestamp, receivedAt, sentAt)")
        }
        let identity = Self.identity(view, fields, traits: Self.userTraits(view, fields, .track), type: .track)
        if identity.isAnonymous { return .skipped(.anonymous) }

        out.append(UInt8(ascii: "{"))
        ObjectWriter.key("event_name", to: &out)
        JSONWriter.appendString(view, event, scratch: &scratch, to: &out)
        ObjectWriter.key("created_at", to: &out)
        JSONWriter.appendInt(createdAt, to: &out)
        writeIdentity(view, identity, both: false)
        if let properties = fields.properties, view.isObject(properties) {
            collectMetadata(view, properties)
            if attributes.write(key: "metadata", limit: Self.maxMetadataKeys, to: &out) > 0 {
                warnings.add(.metadataKeysDropped)
            }
        }
        out.append(UInt8(ascii: "}"))
        return .mapped(.event)
    }

    /// Top-level rules first (revenue -> price, rich values kept, `_date` keys to unix seconds),
    /// then the generic flattening of §6. Metadata strings are not cut.
    mutating func collectMetadata(_ view: JSONView, _ properties: Int) {
        attributes.reset()
        let revenue = view.member(properties, "revenue").flatMap { view.kind($0) == .number ? $0 : nil }
        let cents = revenue.flatMap { view.double($0) }.flatMap { value -> Int64? in
            let amount = (value * 100).rounded()
            return abs(amount) < 9.0e15 ? Int64(amount) : nil
        }
        view.forEachMember(properties) { key, value in
            if let cents, key + 1 == revenue {
                let nameStart = attributes.beginEntry(named: "price")
                let valueStart = attributes.values.count
                let currency = view.member(properties, "currency")
                attributes.add(rawValue: { out, scratch in
                    JSONWriter.append("{\"amount\":", to: &out)
                    JSONWriter.appendInt(cents, to: &out)
                    JSONWriter.append(",\"currency\":", to: &out)
                    if let currency, view.isString(currency), !view.isEmptyString(currency) {
                        scratch.removeAll()
                        view.appendDecodedString(currency, to: &scratch)
                        for k in 0..<scratch.count { scratch[k] = asciiLower(scratch[k]) }
                        JSONWriter.appendQuoted(scratch.bytes, to: &out)
                    } else {
                        JSONWriter.append("\"usd\"", to: &out)
                    }
                    out.append(UInt8(ascii: "}"))
                })
                attributes.endEntry(nameStart: nameStart, valueStart: valueStart)
                return
            }
            if cents != nil, view.stringEquals(key, "currency") { return }
            if view.isObject(value), Self.isRichValue(view, value) {
                attributes.add(view: view, key: key) { out, scratch in
                    JSONWriter.appendCanonical(view, value, scratch: &scratch, to: &out)
                }
                return
            }
            // §2: every date field follows the timestamp rules, so numbers (ms above 1e11) count too.
            if view.kind(value) == .string || view.kind(value) == .number, view.stringHasSuffix(key, "_date"),
                let seconds = Timestamp.unixSeconds(view, value)
            {
                attributes.add(view: view, key: key) { out, _ in JSONWriter.appendInt(seconds, to: &out) }
                return
            }
            attributes.addFlattened(view: view, key: key, value: value, maxScalars: .max)
        }
    }

    /// An Intercom rich value: exactly the keys `{amount, currency}` or `{url, value}`.
    static func isRichValue(_ view: JSONView, _ object: Int) -> Bool {
        guard view.memberCount(object) == 2 else { return false }
        let a = object + 1
        let b = Int(view.nodes[a + 1].subtreeEnd)
        func pair(_ x: StaticString, _ y: StaticString) -> Bool {
            (view.stringEquals(a, x) && view.stringEquals(b, y)) || (view.stringEquals(a, y) && view.stringEquals(b, x))
        }
        return pair("amount", "currency") || pair("url", "value")
    }
}

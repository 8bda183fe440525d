// Fuzz target: the sandbox's request body handling, as far as it is separable from NIO: its JSON
// reader and writer, and the bulk request's item rules (ItemValidator), driven the way
// SandboxEngine's bulk handler drives them. The 2.x calls have their own target, fuzz/rest.
//
// Checks: no trap on any body; what the reader accepts, the writer writes as JSON the reader
// reads back to the same value (the error feed and --record echo items so); the error-feed entry
// built for a failed item, and a valid item's data, are JSON.
@testable import IntercomSandbox

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSandbox(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = Array(UnsafeBufferPointer(start: data, count: size))
    guard let value = try? JSONReader.parse(body) else { return 0 }
    roundTrip(value, "the body")

    guard let object = value.objectValue, case .array(let items)? = object["items"] else {
        _ = try? ItemValidator.checkMetadata(value)
        return 0
    }
    for item in items.prefix(100) {
        guard let itemObject = item.objectValue else { continue }
        for kind in [ItemKind.user, .event] {
            switch ItemValidator.validate(itemObject, as: kind) {
            case .success(let valid):
                check(valid.data == itemObject["data"]?.objectValue, "a valid item's data is not the item's data")
                check(
                    (try? JSONReader.parse(Array(valid.dataJSON.utf8))) == .object(valid.data),
                    "a valid item's dataJSON does not read back as its data")
                check(!valid.key.isEmpty, "a valid item has an empty key")
            case .failure(let failure):
                // The error-feed entry SandboxEngine makes, with an id as it adds one.
                let entry = "{\"id\":\"t_0\"," + failure.errorFeedEntryTail(of: itemObject)
                check((try? JSONReader.parse(Array(entry.utf8))) != nil, "the error-feed entry is not JSON: \(entry)")
            }
        }
    }
    return 0
}

private func roundTrip(_ value: JSONValue, _ what: String) {
    let text = value.serialized
    let again: JSONValue
    do {
        again = try JSONReader.parse(Array(text.utf8))
    } catch {
        check(false, "\(what) serialized is not JSON (\(error)): \(text)")
        return
    }
    check(again == value, "\(what) does not read back as the same value: \(text)")
}

private func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    guard !condition else { return }
    fatalError("sandbox: \(message())")
}

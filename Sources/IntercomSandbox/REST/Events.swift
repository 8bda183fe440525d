/// `POST /events`: `202` with no body; `404` for a user the workspace does not have.
extension Workspace {
    /// Returns whether the event was new (false: a duplicate by user, name and second).
    mutating func createEvent(_ body: JSONObject) throws(APIError) -> Bool {
        try body.expectOnly(["event_name", "created_at", "user_id", "email", "id", "metadata"])
        guard let nameValue = body["event_name"], let eventName = nameValue.stringValue, !eventName.isEmpty else {
            throw .parameterInvalid400("event_name is required and must be a non-empty string", field: "event_name")
        }
        guard let createdValue = body["created_at"], createdValue.isIntegerNumber, case .number(let createdText) = createdValue,
            let createdAt = Int(createdText)
        else {
            throw .parameterInvalid400("created_at is required and must be an integer (unix seconds)", field: "created_at")
        }
        var metadata: JSONValue?
        if let value = body["metadata"], value != .null {
            do {
                try ItemValidator.checkMetadata(value)
            } catch {
                throw .parameterInvalid400(error.message, field: "metadata")
            }
            metadata = value
        }
        func identifier(_ field: String) throws(APIError) -> String? {
            guard let value = body[field], value != .null else { return nil }
            guard let text = value.stringValue, !text.isEmpty else {
                throw .parameterInvalid400("\(field) must be a non-empty string", field: field)
            }
            return text
        }
        let contactIDGiven = try identifier("id")
        let userID = try identifier("user_id")
        let email = try identifier("email")
        guard contactIDGiven != nil || userID != nil || email != nil else {
            throw .parameterInvalid400("an event names its user by id, user_id or email", field: "user_id")
        }
        guard let contact = resolveEventUser(id: contactIDGiven, userID: userID, email: email) else { throw .userNotFound }
        return recordEvent(
            StoredEvent(
                eventName: eventName, createdAt: createdAt, userID: userID, email: email, contactID: contact.id,
                metadata: metadata))
    }

    /// The contact an event is for: by Intercom id, else external id, else email (users first).
    func resolveEventUser(id: String?, userID: String?, email: String?) -> Contact? {
        func usable(_ contact: Contact?) -> Contact? {
            guard let contact, contact.mergedInto == nil, !contact.archived else { return nil }
            return contact
        }
        if let id { return usable(contacts[id]) }
        if let userID { return usable(contactID(externalID: userID).flatMap { contacts[$0] }) }
        if let email {
            let candidates = contactIDs(email: email).compactMap { usable(contacts[$0]) }
            return candidates.first { $0.role == .user } ?? candidates.first
        }
        return nil
    }
}

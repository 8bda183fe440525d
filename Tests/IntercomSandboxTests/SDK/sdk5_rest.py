"""Intercom's own 2.x SDK (python-intercom 5.x) against the sandbox.

Run by SDKTests.swift with SANDBOX_URL and SANDBOX_TOKEN set; exits non-zero on the first
surprise. Every step checks what the sandbox answered, as a new user of the SDK would see it.
"""
import os
import sys

from intercom import (
    CreateContactRequestWithExternalId,
    CreateDataEventRequestWithUserId,
    Intercom,
    SingleFilterSearchRequest,
)
from intercom.core.api_error import ApiError
from intercom.types.create_data_attribute_request_one import CreateDataAttributeRequestOne

url = os.environ["SANDBOX_URL"]
assert url.startswith("http://127.0.0.1:") or url.startswith("http://localhost:"), "loopback only"
client = Intercom(token=os.environ["SANDBOX_TOKEN"], base_url=url)


def check(condition, message):
    if not condition:
        print("FAILED: " + message, file=sys.stderr)
        sys.exit(1)


# A data attribute, then a contact that uses it.
attribute = client.data_attributes.create(
    request=CreateDataAttributeRequestOne(name="plan_name", model="contact", data_type="string")
)
check(attribute.name == "plan_name", f"attribute created: {attribute}")
names = [a.name for a in client.data_attributes.list(model="contact").data]
check("plan_name" in names and "email" in names, f"attributes listed: {names}")

contact = client.contacts.create(
    request=CreateContactRequestWithExternalId(
        external_id="sdk-user-1", email="sdk1@example.com", name="Ada", custom_attributes={"plan_name": "pro"}
    )
)
check(contact.id and contact.external_id == "sdk-user-1", f"contact created: {contact}")

# The same external id again: the SDK raises on the 409.
try:
    client.contacts.create(request=CreateContactRequestWithExternalId(external_id="sdk-user-1"))
    check(False, "a second create with the same external_id must fail")
except ApiError as error:
    check(error.status_code == 409, f"409 expected, got {error.status_code}")
    first = error.body["errors"][0]
    check(first["code"] == "conflict", f"conflict code: {error.body}")
    check(first["message"] == f"A contact matching those details already exists with id={contact.id}", f"message: {first}")

updated = client.contacts.update(contact_id=contact.id, name="Ada Lovelace")
check(updated.name == "Ada Lovelace" and updated.email == "sdk1@example.com", f"update kept the rest: {updated}")
found = client.contacts.find(contact_id=contact.id)
check(found.custom_attributes.get("plan_name") == "pro", f"custom attribute kept: {found.custom_attributes}")

results = list(
    client.contacts.search(query=SingleFilterSearchRequest(field="external_id", operator="=", value="sdk-user-1"))
)
check([c.id for c in results] == [contact.id], f"search found it: {results}")

client.events.create(
    request=CreateDataEventRequestWithUserId(user_id="sdk-user-1", event_name="sdk-tested", created_at=1700000000)
)
try:
    client.events.create(
        request=CreateDataEventRequestWithUserId(user_id="nobody", event_name="sdk-tested", created_at=1700000000)
    )
    check(False, "an event for an unknown user must fail")
except ApiError as error:
    check(error.status_code == 404, f"404 expected for an unknown user, got {error.status_code}")

company = client.companies.create_or_update(request={"company_id": "sdk-co", "name": "SDK Co"})
check(company.company_id == "sdk-co" and company.id, f"company: {company}")
joined = client.companies.attach_contact(contact_id=contact.id, company_id=company.id)
check(joined.id == company.id, f"attached: {joined}")
attached = [c.id for c in client.contacts.list_attached_companies(contact_id=contact.id)]
check(attached == [company.id], f"attached companies: {attached}")
client.companies.detach_contact(contact_id=contact.id, company_id=company.id)
attached = [c.id for c in client.contacts.list_attached_companies(contact_id=contact.id)]
check(attached == [], f"left the company: {attached}")

print("sdk5 ok")

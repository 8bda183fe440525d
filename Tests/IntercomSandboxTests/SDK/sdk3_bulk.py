"""Intercom's legacy SDK (python-intercom 3.x, which still has submit_bulk_job) against the
sandbox's bulk API, with the HTTP Basic `token:` auth it sends.

Run by SDKTests.swift with SANDBOX_URL and SANDBOX_TOKEN set, against a sandbox whose workspace
version is 1.4 (the SDK sends no Intercom-Version); exits non-zero on the first surprise.
"""
import os
import sys

from intercom.client import Client

url = os.environ["SANDBOX_URL"]
assert url.startswith("http://127.0.0.1:") or url.startswith("http://localhost:"), "loopback only"
client = Client(personal_access_token=os.environ["SANDBOX_TOKEN"])
client.base_url = url


def check(condition, message):
    if not condition:
        print("FAILED: " + message, file=sys.stderr)
        sys.exit(1)


job = client.users.submit_bulk_job(create_items=[
    {"user_id": "legacy-1", "email": "legacy1@example.com", "name": "Grace"},
    {"user_id": "legacy-2", "email": "not-an-email"},
])
check(job.id and job.id.startswith("job_"), f"job created: {job.id}")
check(client.rate_limit_details.get("limit"), f"rate limit headers read: {client.rate_limit_details}")

appended = client.users.submit_bulk_job(create_items=[{"user_id": "legacy-3"}], job_id=job.id)
check(appended.id == job.id, f"appended to the same job: {appended.id}")

looked_up = client.jobs.find(id=job.id)
check(looked_up.id == job.id and looked_up.state == "completed", f"job lookup: {looked_up.state}")
check(len(looked_up.tasks) == 2, f"two tasks: {looked_up.tasks}")

feed = client.jobs.errors(id=job.id)
items = feed.items
check(len(items) == 1, f"one failed item: {items}")
check(items[0]["error"]["code"] == "parameter_invalid", f"the bad email failed: {items[0]}")
check(items[0]["data"]["user_id"] == "legacy-2", f"the failed item is echoed: {items[0]}")

print("sdk3 ok")

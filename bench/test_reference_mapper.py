#!/usr/bin/env python3
"""Self-checks of the reference mapper on the contract's trickiest rules.

    python3 bench/test_reference_mapper.py        (or: python3 -m unittest bench/test_reference_mapper.py)
"""

import base64
import calendar
import hashlib
import io
import json
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import reference_mapper as rm  # noqa: E402

MAPPER = os.path.join(HERE, "reference_mapper.py")


def utc(y, mo, d, h=0, mi=0, s=0):
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


def run_lines(lines, exact=True, batch_size=100):
    """Map NDJSON text lines in-process; returns (requests, runner)."""
    out = io.BytesIO()
    r = rm.Runner(exact, batch_size, out, None)
    data = "".join(l + "\n" for l in lines).encode("utf-8")
    orig = rm.open_source
    rm.open_source = lambda src: iter([data])
    try:
        r.run_source("test")
    finally:
        rm.open_source = orig
    r.batcher.finish()
    reqs = [json.loads(l) for l in out.getvalue().splitlines()]
    r.raw_output = out.getvalue()
    return reqs, r


def one(rec, exact=True):
    """The single item's data for one record (or None), and the runner."""
    reqs, r = run_lines([rec if isinstance(rec, str) else json.dumps(rec, ensure_ascii=False)],
                        exact)
    items = [it["data"] for q in reqs for it in q["body"]["items"]]
    assert len(items) <= 1
    return (items[0] if items else None), r


def ident(**kw):
    rec = {"type": "identify", "userId": "u1", "timestamp": "2026-11-01T10:00:00Z"}
    rec.update(kw)
    return rec


def track(props, **kw):
    rec = {"type": "track", "event": "E", "userId": "u1", "timestamp": "2026-11-01T10:00:00Z",
           "properties": props}
    rec.update(kw)
    return rec


class Timestamps(unittest.TestCase):
    def test_accepted_forms(self):
        t = utc(2026, 11, 1, 10, 23, 45)
        cases = {
            "2026-11-01T10:23:45Z": t,
            "2026-11-01T10:23:45.1Z": t,
            "2026-11-01T10:23:45.999999999999Z": t,
            "2026-11-01T10:23:45": t,
            "2026-11-01T10:23:45.5": t,
            "2026-11-01T12:23:45+02:00": t,
            "2026-11-01T04:53:45.250-05:30": t,
            "2026-11-01T10:23:45-00:00": t,
            "2026-11-01": utc(2026, 11, 1),
            "2024-02-29": utc(2024, 2, 29),
            "1969-12-31T23:59:59.5Z": -1,
            1762000000: 1762000000,
            1762000000123: 1762000000,
            1762000000.999: 1762000000,
            100000000000: 100000000000,  # not above 10^11: seconds
            100000000001: 100000000,
            -1.5: -2,
        }
        for v, want in cases.items():
            self.assertEqual(rm.parse_date(v), want, v)

    def test_invalid_forms(self):
        for v in ["2026-11-01 10:23:45", "1762000000", "", "2026-11-01T10:23", "2026-11-01T10:23:45.",
                  "2026-11-01T10:23:45.Z", "2026-02-29", "2026-13-01", "2026-11-31", "2026-11-01T24:00:00Z",
                  "2026-11-01T10:60:00Z", "2026-11-01T10:23:60Z", "2026-11-01T10:23:45+0200",
                  "2026-11-01T10:23:45+02", "2026-11-01t10:23:45Z", "2026-11-01T10:23:45z",
                  "2026-11-01T10:23:45 Z", " 2026-11-01", "２０２６-11-01", "2026-11-01T10:23:45+24:00",
                  True, False, [1], {"a": 1}, "yesterday", "2026-1-01"]:
            self.assertIsNone(rm.parse_date(v), repr(v))

    def test_first_present_not_null_decides_and_invalid_is_not_replaced(self):
        self.assertEqual(rm.record_timestamp({"timestamp": None, "originalTimestamp": 5, "sentAt": 9}),
                         (True, 5))
        self.assertEqual(rm.record_timestamp({"timestamp": "bad", "originalTimestamp": 5}), (True, None))
        self.assertEqual(rm.record_timestamp({"receivedAt": 7}), (True, 7))
        self.assertEqual(rm.record_timestamp({}), (False, None))

    def test_track_with_invalid_or_missing_timestamp_is_rejected(self):
        for rec in [track({}, timestamp="2026-11-01 10:00:00"),
                    {"type": "track", "event": "E", "userId": "u"}]:
            d, r = one(rec)
            self.assertIsNone(d)
            self.assertEqual(r.rejected, {"invalid_timestamp": 1})

    def test_identify_dates(self):
        d, r = one(ident(traits={"createdAt": "2026-01-02T03:04:05.678+01:00",
                                 "lastRequestAt": 1762000000123}))
        self.assertEqual(d["signed_up_at"], utc(2026, 1, 2, 2, 4, 5))
        self.assertEqual(d["last_request_at"], 1762000000)
        d, r = one(ident(traits={"createdAt": "soon", "lastRequestAt": "later", "plan": "x"}))
        self.assertNotIn("signed_up_at", d)
        self.assertNotIn("last_request_at", d)  # an invalid lastRequestAt is not replaced
        self.assertEqual(r.ctx.warnings, {"invalid_created_at": 1, "invalid_last_request_at": 1})
        d, r = one(ident(traits={"createdAt": None, "plan": "x"}))
        self.assertEqual(d["last_request_at"], utc(2026, 11, 1, 10))
        self.assertEqual(r.ctx.warnings, {})


class Flattening(unittest.TestCase):
    def test_nested_objects_join_with_underscore_and_empty_gives_nothing(self):
        d, _ = one(ident(traits={"address": {"city": "Oslo", "geo": {"lat": 59.9, "x": {}}}, "e": {},
                                 "n": None}))
        self.assertEqual(d["custom_attributes"], {"address_city": "Oslo", "address_geo_lat": 59.9,
                                                  "n": None})

    def test_names_are_sanitised_and_later_value_wins_in_place_of_first(self):
        d, _ = one(ident(traits={"a_b": 1, "z": 0, "a": {"b": 2}, "x.y": 1, "x$y": 2, "c\x01\x7f": 3}))
        ca = d["custom_attributes"]
        self.assertEqual(list(ca.items()), [("a_b", 2), ("z", 0), ("x_y", 2), ("c__", 3)])

    def test_reserved_traits_are_not_custom_attributes(self):
        tr = {k: "v" for k in ["email", "name", "firstName", "lastName", "phone", "company",
                               "unsubscribedFromEmails", "id", "userId"]}
        tr.update({"createdAt": None, "lastRequestAt": None, "companies": "nope", "plan": "p"})
        d, _ = one(ident(traits=tr))
        self.assertEqual(d["custom_attributes"], {"plan": "p"})

    def test_metadata_flattening_rich_values_and_date_keys(self):
        d, r = one(track({"obj": {"amount": 5, "currency": "usd"}, "link": {"url": "u", "value": "v"},
                          "not_rich": {"amount": 5, "currency": "usd", "x": 1},
                          "ship_date": "2026-11-02", "bad_date": "soon", "ms_date": 1762000000123,
                          "a.b_date": "2026-11-02T00:00:00Z", "nested": {"in_date": "2026-11-02",
                                                                         "r": {"url": "u", "value": 1}}}))
        self.assertEqual(list(d["metadata"].items()), list({
            "obj": {"amount": 5, "currency": "usd"}, "link": {"url": "u", "value": "v"},
            "not_rich_amount": 5, "not_rich_currency": "usd", "not_rich_x": 1,
            "ship_date": utc(2026, 11, 2), "bad_date": "soon", "ms_date": 1762000000,
            "a_b_date": utc(2026, 11, 2),
            # rich and _date rules are for top-level keys only
            "nested_in_date": "2026-11-02"}.items()))  # 10 of 12 keys
        self.assertEqual(r.ctx.warnings, {"metadata_keys_dropped": 1})
        d, _ = one(track({"n": {"r": {"url": "u", "value": 1}}}))
        self.assertEqual(d["metadata"], {"n_r_url": "u", "n_r_value": 1})


class Arrays(unittest.TestCase):
    def test_compact_json_text(self):
        d, _ = one(ident(traits={"t": ["a", "b"], "u": ["é/ü", "q\"\\", "\b\f\n\r\t\x01\x1f\x7f\u2028"],
                                 "o": [{"z": 1, "a": [None, True]}], "e": []}))
        ca = d["custom_attributes"]
        self.assertEqual(ca["t"], '["a","b"]')
        self.assertEqual(ca["u"], '["é/ü","q\\"\\\\","\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\u2028"]')
        self.assertEqual(ca["o"], '[{"z":1,"a":[null,true]}]')
        self.assertEqual(ca["e"], "[]")

    def test_numbers_keep_source_text_in_exact_mode(self):
        line = '{"type":"identify","userId":"u","traits":{"s":[2.50,1e3,-0,1E+2,10],"v":2.50}}'
        d, r = one(line, exact=True)
        self.assertEqual(d["custom_attributes"]["s"], "[2.50,1e3,-0,1E+2,10]")
        self.assertIn(b'"v":2.50}', r.raw_output)
        d, _ = one(line, exact=False)  # orjson: the documented difference
        self.assertEqual(d["custom_attributes"]["s"], "[2.5,1000.0,0,100.0,10]")


class Truncation(unittest.TestCase):
    def test_user_and_company_strings_cut_to_255_scalars_metadata_not(self):
        long = "é" * 254 + "🎉" + "x" * 10  # 265 scalars
        d, r = one(ident(traits={"bio": long, "ok": "y" * 255, "tags": ["z" * 300],
                                 "company": {"name": "C", "about": long}}))
        ca = d["custom_attributes"]
        self.assertEqual(ca["bio"], "é" * 254 + "🎉")
        self.assertEqual(ca["ok"], "y" * 255)
        self.assertEqual(ca["tags"], '["' + "z" * 253)
        self.assertEqual(len(d["companies"][0]["custom_attributes"]["about"]), 255)
        self.assertEqual(r.ctx.warnings, {"string_truncated": 3})
        d, r = one(track({"q": long}))
        self.assertEqual(d["metadata"]["q"], long)
        self.assertEqual(r.ctx.warnings, {})
        d, r = one(ident(traits={"name": long}))
        self.assertEqual(d["name"], long)  # reserved fields are not custom attributes


class MetadataCut(unittest.TestCase):
    def test_first_ten_keys_after_revenue_and_flattening(self):
        props = {"k0": 0, "revenue": 2.675, "currency": "EUR", "n": {"a": 1, "b": 2}}
        props.update({"k%d" % i: i for i in range(1, 10)})
        d, r = one(track(props))
        md = d["metadata"]
        self.assertEqual(list(md), ["k0", "price", "n_a", "n_b", "k1", "k2", "k3", "k4", "k5", "k6"])
        self.assertEqual(md["price"], {"amount": 268, "currency": "eur"})
        self.assertEqual(r.ctx.warnings, {"metadata_keys_dropped": 1})

    def test_exactly_ten_keys_no_warning(self):
        d, r = one(track({"k%d" % i: i for i in range(10)}))
        self.assertEqual(len(d["metadata"]), 10)
        self.assertEqual(r.ctx.warnings, {})

    def test_revenue_rules(self):
        d, _ = one(track({"price": 1, "currency": "GBP", "revenue": 0.285}))
        self.assertEqual(d["metadata"], {"price": {"amount": 28, "currency": "gbp"}})
        d, _ = one(track({"revenue": 1, "price": 1}))  # the later value wins, in the first place
        self.assertEqual(d["metadata"], {"price": 1})
        d, _ = one(track({"revenue": -0.125}))
        self.assertEqual(d["metadata"], {"price": {"amount": -13, "currency": "usd"}})
        d, _ = one(track({"revenue": "19.99", "currency": "EUR"}))  # not a number: no price
        self.assertEqual(d["metadata"], {"revenue": "19.99", "currency": "EUR"})
        d, _ = one(track({"revenue": 20, "currency": 5}))
        self.assertEqual(d["metadata"], {"price": {"amount": 2000, "currency": "usd"}})


class Integrations(unittest.TestCase):
    def test_switches(self):
        cases = [
            ({"Intercom": False}, False), ({"All": False}, False),
            ({"All": False, "Intercom": False}, False), ({"All": False, "Intercom": None}, False),
            ({"All": False, "Intercom": True}, True), ({"All": False, "Intercom": {"user_hash": "h"}}, True),
            ({"All": True, "Intercom": False}, False), ({"Intercom": True}, True), ({}, True),
            ({"Mixpanel": False}, True), ({"All": "false"}, True), ({"all": False}, True),
        ]
        for integ, mapped in cases:
            d, r = one(track({}, integrations=integ))
            self.assertEqual(d is not None, mapped, integ)
            if not mapped:
                self.assertEqual(r.skipped, {"integrations_disabled": 1})
        d, r = one(track({}, integrations=[False]))
        self.assertIsNotNone(d)

    def test_order_of_decisions(self):
        _, r = one({"type": "page", "integrations": {"Intercom": False}})
        self.assertEqual(r.skipped, {"unsupported_type": 1})
        _, r = one({"type": "track", "integrations": {"All": False}})
        self.assertEqual(r.skipped, {"integrations_disabled": 1})
        _, r = one({"type": "track", "anonymousId": "a"})
        self.assertEqual(r.rejected, {"missing_event_name": 1})
        _, r = one({"type": "group", "anonymousId": "a"})
        self.assertEqual(r.rejected, {"missing_group_id": 1})
        _, r = one({"type": "TrAcK", "event": "E", "anonymousId": "a", "timestamp": 1})
        self.assertEqual(r.skipped, {"anonymous": 1})
        _, r = one({"type": "Page"})
        self.assertEqual(r.skipped, {"unsupported_type": 1})
        _, r = one({"type": None})
        self.assertEqual(r.rejected, {"missing_type": 1})
        _, r = one({"type": ["track"]})
        self.assertEqual(r.rejected, {"unknown_type": 1})


class Identity(unittest.TestCase):
    def test_sources(self):
        d, _ = one({"type": "identify", "userId": 42, "traits": {"email": "a@x"}})
        self.assertEqual((d["user_id"], d["email"]), ("42", "a@x"))
        d, _ = one({"type": "identify", "userId": "", "traits": {"userId": True, "id": 7.5}})
        self.assertEqual(d["user_id"], "7.5")
        d, _ = one({"type": "identify", "traits": {}, "context": {"traits": {"email": "c@x", "plan": "p"}}})
        self.assertEqual(d, {"email": "c@x", "custom_attributes": {"plan": "p"}})
        d, _ = one({"type": "track", "event": "E", "timestamp": 1, "properties": {"email": "p@x"}})
        self.assertEqual(d, {"event_name": "E", "created_at": 1, "email": "p@x",
                             "metadata": {"email": "p@x"}})
        d, r = one({"type": "identify", "properties": {"email": "p@x"}})
        self.assertEqual(r.skipped, {"anonymous": 1})  # properties.email is for track only
        d, _ = one({"type": "track", "event": "E", "timestamp": 1, "userId": "u",
                    "context": {"traits": {"email": "c@x"}}})
        self.assertEqual(d, {"event_name": "E", "created_at": 1, "user_id": "u"})

    def test_user_fields(self):
        d, _ = one(ident(traits={"firstName": " Ann", "lastName": "Lee ", "phone": "1",
                                 "unsubscribedFromEmails": True},
                         context={"ip": "1.2.3.4", "userAgent": "UA", "Intercom": {"unsubscribedFromEmails": False}}))
        self.assertEqual(list(d), ["user_id", "name", "phone", "last_request_at", "last_seen_ip",
                                   "last_seen_user_agent", "unsubscribed_from_emails"])
        self.assertEqual((d["name"], d["unsubscribed_from_emails"]), ("Ann Lee", False))
        d, _ = one(ident(traits={"lastName": "Lee"}, context={"active": False, "ip": "1.2.3.4"}))
        self.assertEqual(d, {"user_id": "u1", "name": "Lee"})


class Companies(unittest.TestCase):
    def test_company_rules(self):
        d, r = one(ident(traits={
            "company": {"name": "Acme", "monthlySpend": "99.50", "employees": "1,000", "size": "250",
                        "createdAt": "bad", "company_id": "ignored?", "userId": "x", "remove": False,
                        "tier": {"a": 1}},
            "companies": [{"id": 5, "company_id": "c", "name": "B", "monthlySpend": " 1"},
                          "Cee", {"plan": "no id"}, {"id": "z", "remove": True, "name": "Zed"}]}))
        cs = d["companies"]
        self.assertEqual(cs[0], {"company_id": "ignored?", "name": "Acme", "monthly_spend": 99.5,
                                 "size": 250, "custom_attributes": {"remove": False, "tier_a": 1}})
        self.assertEqual(cs[1], {"company_id": "5", "name": "B"})
        self.assertEqual(cs[2], {"company_id": hashlib.md5(b"Cee").hexdigest(), "name": "Cee"})
        self.assertEqual(cs[3], {"company_id": "z", "remove": True})
        self.assertEqual(len(cs), 4)
        self.assertEqual(r.ctx.warnings, {"invalid_company_created_at": 1})
        self.assertEqual(rm.md5_hex("Ærø"), hashlib.md5("Ærø".encode("utf-8")).hexdigest())

    def test_group(self):
        d, _ = one({"type": "group", "groupId": 42, "userId": "u", "context": {"traits": {"email": "e@x"}},
                    "traits": {"id": "t", "company_id": "t2", "name": "Acme", "employees": 12.0,
                               "size": 30, "createdAt": 1700000000, "website": "w", "industry": "i",
                               "plan": "p", "monthlySpend": 12, "userId": "u", "x": [1]}})
        self.assertEqual(d, {"user_id": "u", "email": "e@x", "companies": [
            {"company_id": "42", "name": "Acme", "plan": "p", "monthly_spend": 12,
             "remote_created_at": 1700000000, "size": 30, "website": "w", "industry": "i",
             "custom_attributes": {"x": "[1]"}}]})
        d, _ = one({"type": "group", "groupId": "g", "userId": "u", "traits": {"name": "A", "remove": True}})
        self.assertEqual(d, {"user_id": "u", "companies": [{"company_id": "g", "remove": True}]})


class Batching(unittest.TestCase):
    def test_users_before_the_events_that_follow_them(self):
        u = lambda i: json.dumps({"type": "identify", "userId": "u%d" % i})
        e = lambda i: json.dumps({"type": "track", "event": "e%d" % i, "userId": "u", "timestamp": 1})
        reqs, _ = run_lines([u(1), e(1), e(2), u(2), u(3), u(4), e(3)], batch_size=2)
        got = [(q["path"], [it["data"].get("event_name") or it["data"]["user_id"]
                            for it in q["body"]["items"]]) for q in reqs]
        self.assertEqual(got, [("/bulk/users", ["u1"]), ("/bulk/events", ["e1", "e2"]),
                               ("/bulk/users", ["u2", "u3"]), ("/bulk/users", ["u4"]),
                               ("/bulk/events", ["e3"])])
        self.assertEqual(reqs[0]["method"], "POST")
        self.assertEqual(reqs[0]["body"]["items"][0]["method"], "post")
        self.assertEqual(reqs[0]["body"]["items"][0]["data_type"], "user")


class Fixtures(unittest.TestCase):
    def _run(self, *args):
        p = subprocess.run([sys.executable, MAPPER, "--report", "-", *args],
                           capture_output=True)
        rep = json.loads(p.stderr[p.stderr.index(b"{"):])
        return p.returncode, rep, p.stdout

    def test_edge_files_match_expected(self):
        edge = os.path.join(ROOT, "fixtures", "edge")
        with open(os.path.join(edge, "expected.json"), encoding="utf-8") as f:
            expected = json.load(f)
        for name, e in expected.items():
            rc, rep, _ = self._run(os.path.join(edge, name))
            for k in ("records", "mapped", "skipped", "rejected"):
                self.assertEqual(rep[k], e[k], (name, k))
            self.assertEqual(rc, e["exit_code"], name)

    def test_sample_counts_add_up(self):
        rc, rep, out = self._run(os.path.join(ROOT, "fixtures", "sample"))
        self.assertEqual(rc, 1)  # the sample holds rejected records on purpose
        total = (rep["mapped"]["users"] + rep["mapped"]["events"] + sum(rep["skipped"].values())
                 + sum(rep["rejected"].values()))
        self.assertEqual(rep["records"], total)
        lines = out.splitlines()
        self.assertEqual(rep["requests"], len(lines))
        items = sum(len(json.loads(l)["body"]["items"]) for l in lines)
        self.assertEqual(items, rep["mapped"]["users"] + rep["mapped"]["events"])

    def test_rejects_file_has_base64_for_invalid_utf8(self):
        import tempfile
        with tempfile.TemporaryDirectory() as td:
            rj = os.path.join(td, "rejects.ndjson")
            src = os.path.join(ROOT, "fixtures", "edge", "invalid_utf8.ndjson")
            p = subprocess.run([sys.executable, MAPPER, "--rejects", rj, src], capture_output=True)
            self.assertEqual(p.returncode, 1, p.stderr)  # a rejected record: exit 1, as the tool
            with open(rj, encoding="utf-8") as f:
                rows = [json.loads(l) for l in f]
        self.assertEqual(len(rows), 1)
        self.assertEqual((rows[0]["line"], rows[0]["reason"], rows[0]["source"]), (3, "invalid_json", src))
        self.assertNotIn("record", rows[0])
        self.assertIn(b"Caf\xe9", base64.b64decode(rows[0]["record_base64"]))


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""The workspace state a backfill must leave, computed independently of the uploader.

    expected_state.py expect --items DRYRUN.ndjson [--seed SEED.json] [--api rest|bulk]
    expected_state.py normalize STATE.json          # the sandbox's GET /sandbox/state answer
    expected_state.py diff A.json B.json            # exit 1 (and up to 20 lines) when they differ

DRYRUN.ndjson is `intercom-backfill run --dry-run --api-version 1.4 --out DRYRUN.ndjson ...`.
Its request lines are applied in file order: user items keep their input order, and every user
item that precedes an event in the input is in an earlier line than the event (Batcher rule), so
an event is resolved against the contacts as they are after the user items before it. (A user
item that comes after an event in the input may sit in an earlier line. A dry run with
`--batch-size 1` has one item a line, exactly in input order: use it for `expect`. An event whose
user only appears later in the input is order-dependent in a real REST run (it may or may not
meet a 404), and so are items of different contact keys that write the same fields: keep
acceptance corpora free of both, as `fixtures/generate.py rest-mix` is; fixtures/sample is not
(19 of its events depend on that timing in REST mode).)

Validated (bulk): `intercom-backfill run --api-version 1.4 --concurrency 1` into the sandbox, then
`diff` of GET /sandbox/state with `expect --api bulk` is equal for fixtures/sample and for rest-mix
over its seed. At the default --concurrency 4 the bulk uploader can apply two users batches out of
input order, so later-wins fields differ from any input-order model: compare bulk runs at 1.
Validated (rest): a naive sequential 2.x client (find_by_external_id / POST /contacts / 409 /
PUT, POST /data_attributes, POST /companies + join / DELETE, POST /events) applying the same items
through the sandbox's REST calls gives the state of `expect --api rest`, for both inputs.

Normalized form (both `expect` and `normalize` give it; JSON, sorted keys, numbers kept as their
source text):
  contacts: [{external_id, email, role, name, phone, avatar, owner_id, signed_up_at, last_seen_at,
              unsubscribed_from_emails, custom_attributes, companies (sorted company_ids), archived}]
            sorted by (external_id or "", email or ""); merged-away contacts are dropped; no ids,
            no created_at/updated_at.
  companies: [{company_id, name, plan, monthly_spend (integer part), remote_created_at, size,
               website, industry, custom_attributes, user_count}] by company_id; user_count is
               exact (memberships of contacts, archived ones included, merged ones moved over).
  events: sorted set of {event_name, created_at, who, metadata}; who = external_id, else email,
          of the contact the event resolved to; an event stored without a contact (bulk API, user
          unknown at the time) keeps the user_id, else email, it was sent with.
  data_attributes: sorted set of {name, model, data_type} (custom attributes only).

Rules where --api rest and --api bulk differ (bulk = Sources/IntercomSandbox/REST/BulkBridge.swift,
rest = contract 8.3/8.3a over Contacts.swift, Companies.swift, DataAttributes.swift, Events.swift):
  1. Attribute creation: bulk creates any new name on first non-null value (typed by it), with no
     name check (only '.'/'$' fail the item, which the mapper never sends). rest creates it only if
     Intercom's rules allow (letters incl. Unicode alphabetic, ASCII digits, '_', '-', space; no
     leading/trailing space; <= 190 scalars; not a standard attribute of either model, not a custom
     attribute of the other model, <= 250 custom per model); a refused name is left out of every
     item (attribute_not_created), e.g. contact traits `avatar`, `tags`, `browser`, `os`, `id`,
     `companies`, `created_at`, names with ':' '/' '@' '+' '(' etc.
  2. Attribute types: bulk stores every value as sent, whatever the attribute's type. rest leaves
     out a value whose type does not fit (string vs integer; a float or "1e3" for an integer; an
     integer is fine for a float) - the attribute keeps its previous value.
  3. null for an attribute that does not exist: bulk clears nothing and creates nothing; rest the
     same (left out). Same state.
  4. Archived contacts: bulk upserts them like any contact (found by user_id, or by email) and
     joins/leaves their companies; rest fails the item (contact_archived), nothing of it is applied
     (its new attribute names are still created: the uploader creates them before the call that
     meets the 409). Events for archived (or merged) contacts: bulk records them without a contact;
     rest does not record them (404 user_not_found).
  5. Events for unknown users: bulk records them (no contact); rest drops them (user_not_found).
  6. user_id U unknown + email E held by a user contact WITH another external id: bulk creates a
     second contact (U, E); rest fails the item (409 conflict). E held by a contact without an
     external id: both apply the item to it and it takes U (rest: unless that contact is archived,
     which fails the item). An update whose email is held by another user contact fails in rest
     (409) and is applied in bulk.
  7. Event dedup: both by (contact, name, second) when the event resolves to a contact; bulk also
     keeps unresolved events, dedup by user_id, else lowercased email.
  8. last_seen_ip / last_seen_user_agent: not written by rest; bulk accepts them but the workspace
     stores neither, so the state is the same.
  9. Merged-away contacts (seed "merge"): neither mode finds them by external id or email (they are
     unindexed); an item for them creates a new contact (rest: with a fresh state folder; an
     uploader that remembers the old contact id would follow the 410 to the survivor instead).
Leads: items match only role=user contacts by email (POST /contacts 409 and bulk both ignore
leads); email-only rest events resolve users first, then leads (resolveEventUser).
"""

import argparse
import json
import sys
import unicodedata


# ---------------------------------------------------------------------------------------------
# JSON with numbers kept as source text

class Num(str):
    """A JSON number, kept as its source text."""


def _num(text):
    return Num(text)


def loads(text):
    return json.loads(text, parse_int=_num, parse_float=_num, parse_constant=_num)


def dumps(value, indent=None, _level=0):
    if isinstance(value, Num):
        return str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    pad = "" if indent is None else "\n" + " " * (indent * (_level + 1))
    end = "" if indent is None else "\n" + " " * (indent * _level)
    sep = ":" if indent is None else ": "
    if isinstance(value, dict):
        if not value:
            return "{}"
        parts = [json.dumps(k, ensure_ascii=False) + sep + dumps(value[k], indent, _level + 1) for k in sorted(value)]
        return "{" + pad + ("," + pad).join(parts) + end + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        parts = [dumps(v, indent, _level + 1) for v in value]
        return "[" + pad + ("," + pad).join(parts) + end + "]"
    raise TypeError("not JSON: %r" % (value,))


def canon(value):
    return dumps(value)


def is_num(v):
    return isinstance(v, Num)


def is_integer_num(v):
    return is_num(v) and not any(c in v for c in ".eE")


def as_int(v):
    """Int(source) as Swift reads an integer JSON number's text; None otherwise."""
    if v is None:
        return None
    try:
        return int(str(v))
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Data attributes (DataAttributes.swift)

STANDARD = {
    "contact": ["name", "email", "phone", "external_id", "role", "avatar", "owner_id", "signed_up_at",
                "last_seen_at", "created_at", "updated_at", "unsubscribed_from_emails", "last_contacted_at",
                "last_replied_at", "last_email_opened_at", "last_email_clicked_at", "language_override",
                "browser", "os", "location.country", "location.city", "companies", "tags", "segments",
                "user_id", "id"],
    "company": ["name", "company_id", "plan", "monthly_spend", "size", "website", "industry",
                "remote_created_at", "created_at", "updated_at", "last_request_at", "session_count",
                "user_count", "tags", "id"],
}
CUSTOM_LIMIT = 250
OTHER = {"contact": "company", "company": "contact"}


def inferred_type(v):
    if isinstance(v, Num):
        return "integer" if is_integer_num(v) else "float"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, str):
        return "string"
    return None


def accepts(data_type, v):
    if v is None:
        return True
    if isinstance(v, Num):
        if data_type in ("integer", "date"):
            return is_integer_num(v)
        return data_type == "float"
    if isinstance(v, bool):
        return data_type == "boolean"
    if isinstance(v, str):
        return data_type == "string"
    return False


def _alphabetic(ch):
    # Swift's Unicode Alphabetic property, approximated: letters, letter numbers, and the
    # combining marks that are Other_Alphabetic in practice (Mn/Mc vowel signs).
    if ch.isalpha():
        return True
    return unicodedata.category(ch) in ("Nl", "Mc")


def valid_name(name):
    if not name or len(name) > 190:
        return False
    if name.strip(" \t\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000") != name:
        return False
    return all(_alphabetic(c) or "0" <= c <= "9" or c in "_- " for c in name)


class Attributes:
    def __init__(self):
        self.types = {"contact": {}, "company": {}}

    def get(self, model, name):
        return self.types[model].get(name)

    def create_checked(self, model, name, data_type):
        """POST /data_attributes; returns an error text or None."""
        if not valid_name(name):
            return "invalid name"
        if name in self.types[model]:
            return "exists"
        if name in STANDARD[model]:
            return "standard"
        if name in self.types[OTHER[model]] or name in STANDARD[OTHER[model]]:
            return "used by the other model"
        if len(self.types[model]) >= CUSTOM_LIMIT:
            return "limit"
        self.types[model][name] = data_type
        return None

    def create_missing(self, model, attrs):
        """Bulk API and seeding: a new name gets the type of its value (non-null), unchecked."""
        for name, v in attrs.items():
            if name not in self.types[model]:
                t = inferred_type(v)
                if t:
                    self.types[model][name] = t

    def rest_filter(self, model, attrs):
        """What a 2.x uploader sends: names that exist (or are created now) and values that fit."""
        out = {}
        for name, v in attrs.items():
            t = self.get(model, name)
            if t is None:
                if v is None:
                    continue  # nothing to clear
                if self.create_checked(model, name, inferred_type(v)) is not None:
                    continue  # attribute_not_created
                t = self.get(model, name)
            if not accepts(t, v):
                continue  # attribute_type_mismatch
            out[name] = v
        return out

    def json(self):
        return [{"name": n, "model": m, "data_type": t} for m in ("contact", "company") for n, t in self.types[m].items()]


# ---------------------------------------------------------------------------------------------
# The workspace model

class Failed(Exception):
    pass


class Model:
    def __init__(self, api):
        self.api = api
        self.contacts = []  # dicts; index = creation order
        self.companies = {}  # company_id -> dict
        self.attributes = Attributes()
        self.events = {}  # dedup key -> event
        self.by_ext = {}
        self.by_email = {}  # lower email -> [contact index] in creation order

    # -- contacts

    def new_contact(self, **fields):
        c = {"external_id": None, "role": "user", "email": None, "phone": None, "name": None, "avatar": None,
             "owner_id": None, "signed_up_at": None, "last_seen_at": None, "unsubscribed_from_emails": False,
             "custom_attributes": {}, "companies": [], "archived": False, "merged": False}
        c.update(fields)
        c["seq"] = len(self.contacts)
        self.contacts.append(c)
        self._index(c)
        return c

    def _index(self, c):
        if c["merged"]:
            return
        if c["external_id"] is not None:
            self.by_ext[c["external_id"]] = c["seq"]
        if c["email"] is not None:
            ids = self.by_email.setdefault(c["email"].lower(), [])
            ids.append(c["seq"])
            ids.sort()

    def _unindex(self, c):
        if c["external_id"] is not None and self.by_ext.get(c["external_id"]) == c["seq"]:
            del self.by_ext[c["external_id"]]
        if c["email"] is not None:
            ids = self.by_email.get(c["email"].lower(), [])
            if c["seq"] in ids:
                ids.remove(c["seq"])
            if not ids:
                self.by_email.pop(c["email"].lower(), None)

    def set_identity(self, c, external_id=None, email=None, merged=None):
        self._unindex(c)
        if external_id is not None:
            c["external_id"] = external_id
        if email is not None:
            c["email"] = email
        if merged is not None:
            c["merged"] = merged
        self._index(c)

    def find_ext(self, ext):
        i = self.by_ext.get(ext)
        return None if i is None else self.contacts[i]

    def with_email(self, email):
        return [self.contacts[i] for i in self.by_email.get(email.lower(), [])]

    def first_user_with_email(self, email, pred=lambda c: True):
        for c in self.with_email(email):
            if c["role"] == "user" and pred(c):
                return c
        return None

    # -- companies

    def upsert_company(self, fields, attrs):
        cid = fields["company_id"]
        for f in ("remote_created_at", "size"):
            if fields.get(f) is not None and not is_integer_num(fields[f]):
                raise Failed(f)
        if fields.get("monthly_spend") is not None and not abs(float(str(fields["monthly_spend"]))) < 9e15:
            raise Failed("monthly_spend")
        co = self.companies.get(cid)
        if co is None:
            co = {"company_id": cid, "name": None, "plan": None, "monthly_spend": None, "remote_created_at": None,
                  "size": None, "website": None, "industry": None, "custom_attributes": {}, "members": set()}
        for f in ("name", "plan", "website", "industry"):
            if f in fields:
                co[f] = fields[f]
        if "monthly_spend" in fields:
            v = fields["monthly_spend"]
            if v is None:
                co["monthly_spend"] = None
            else:
                x = float(str(v))
                if not (abs(x) < 9e15):
                    raise Failed("monthly_spend")
                co["monthly_spend"] = int(x)
        for f in ("remote_created_at", "size"):
            if f in fields:
                v = fields[f]
                if v is not None and not is_integer_num(v):
                    raise Failed(f)
                co[f] = None if v is None else int(float(str(v)))
        self.companies[cid] = co
        for name, v in attrs.items():
            if v is None:
                co["custom_attributes"].pop(name, None)
            else:
                co["custom_attributes"][name] = v
        return co

    def join(self, c, co):
        if co["company_id"] not in c["companies"]:
            c["companies"].append(co["company_id"])

    def leave(self, c, cid):
        if cid in c["companies"]:
            c["companies"].remove(cid)

    # -- seed (Admin.swift)

    def seed(self, doc):
        for a in doc.get("data_attributes", []):
            err = self.attributes.create_checked(a["model"], a["name"], a["data_type"])
            if err:
                raise SystemExit("seed: data attribute %r: %s" % (a["name"], err))
        for co in doc.get("companies", []):
            attrs = co.get("custom_attributes") or {}
            self.attributes.create_missing("company", attrs)
            fields = {k: v for k, v in co.items() if k != "custom_attributes"}
            self.upsert_company(fields, attrs)
        for entry in doc.get("contacts", []):
            attrs = entry.get("custom_attributes") or {}
            self.attributes.create_missing("contact", attrs)
            role = entry.get("role", "user")
            ext, email = entry.get("external_id"), entry.get("email")
            if (ext is not None and self.find_ext(ext)) or (role == "user" and email and self.first_user_with_email(email)):
                raise SystemExit("seed: contact %r conflicts with an earlier one" % (ext or email,))
            fields = {k: entry[k] for k in ("external_id", "email", "phone", "name", "avatar", "signed_up_at",
                                             "last_seen_at", "unsubscribed_from_emails", "owner_id") if k in entry}
            for k in ("signed_up_at", "last_seen_at", "owner_id"):
                if k in fields:
                    fields[k] = as_int(fields[k])
            c = self.new_contact(role=role, archived=entry.get("archived") is True, **fields)
            c["custom_attributes"] = {k: v for k, v in attrs.items() if v is not None}
            for cid in entry.get("companies", []):
                if cid not in self.companies:
                    raise SystemExit("seed: contact names company %r, not seeded" % cid)
                self.join(c, self.companies[cid])
        for ref in doc.get("archive", []):
            self.resolve_ref(ref)["archived"] = True
        for m in doc.get("merge", []):
            a, b = self.resolve_ref(m["from"]), self.resolve_ref(m["into"])
            for cid in list(a["companies"]):
                self.leave(a, cid)
                self.join(b, self.companies[cid])
            self.set_identity(a, merged=True)

    def resolve_ref(self, ref):
        c = self.find_ext(ref)
        if c is None:
            cs = self.with_email(ref)
            c = cs[0] if cs else None
        if c is None:
            raise SystemExit("seed: no contact %r (contact ids are not supported here)" % ref)
        return c

    # -- items

    def user_item(self, data):
        if self.api == "bulk":
            self.bulk_user(data)
        else:
            self.rest_user(data)

    def _valid_bulk_user(self, data):
        uid, email = data.get("user_id"), data.get("email")
        if uid is not None and not isinstance(uid, str) or isinstance(uid, Num):
            return False
        if email is not None:
            if not isinstance(email, str) or isinstance(email, Num):
                return False
            parts = email.split("@")
            if len(parts) != 2 or not parts[0] or not parts[1]:
                return False
        if not uid and email is None:
            return False

        def attrs_ok(attrs):
            for k, v in attrs.items():
                if "." in k or "$" in k or isinstance(v, (dict, list)):
                    return False
                if isinstance(v, str) and not isinstance(v, Num) and len(v) > 255:
                    return False
            return True
        if not attrs_ok(data.get("custom_attributes") or {}):
            return False
        for co in data.get("companies") or []:
            cid = co.get("company_id")
            if not isinstance(cid, str) or isinstance(cid, Num) or not cid:
                return False
            if not attrs_ok(co.get("custom_attributes") or {}):
                return False
        return True

    def _write_fields(self, c, data):
        for f in ("name", "phone"):
            if f in data:
                v = data[f]
                c[f] = v if isinstance(v, str) and not isinstance(v, Num) else None
        if "signed_up_at" in data:
            c["signed_up_at"] = as_int(data["signed_up_at"])
        if "last_request_at" in data:
            c["last_seen_at"] = as_int(data["last_request_at"])
        if isinstance(data.get("unsubscribed_from_emails"), bool):
            c["unsubscribed_from_emails"] = data["unsubscribed_from_emails"]

    def _write_attrs(self, c, attrs):
        for name, v in attrs.items():
            if v is None:
                c["custom_attributes"].pop(name, None)
            else:
                c["custom_attributes"][name] = v

    @staticmethod
    def _company_fields(entry):
        return {k: v for k, v in entry.items()
                if k in ("company_id", "name", "plan", "monthly_spend", "remote_created_at", "size", "website", "industry")}

    def bulk_user(self, data):
        if not self._valid_bulk_user(data):
            return
        uid = data.get("user_id") or None
        email = data.get("email")
        target = None
        if uid is not None and self.find_ext(uid):
            target = self.find_ext(uid)
        elif email is not None:
            target = self.first_user_with_email(email, lambda c: uid is None or c["external_id"] is None)
        if target is None:
            target = self.new_contact(external_id=uid, email=email)
        self.set_identity(target, external_id=uid, email=email)
        self._write_fields(target, data)
        attrs = data.get("custom_attributes")
        if isinstance(attrs, dict):
            self.attributes.create_missing("contact", attrs)
            self._write_attrs(target, attrs)
        for entry in data.get("companies") or []:
            cid = entry["company_id"]
            if entry.get("remove") is True:
                self.leave(target, cid)
                continue
            try:
                fields = self._company_fields(entry)
                # upsert first (no custom attributes), then the attributes are created and set
                co = self.upsert_company(fields, {})
            except Failed:
                continue
            cattrs = entry.get("custom_attributes")
            if isinstance(cattrs, dict):
                self.attributes.create_missing("company", cattrs)
                self.upsert_company({"company_id": cid}, cattrs)
            self.join(target, co)

    def rest_user(self, data):
        uid = data.get("user_id") or None
        email = data.get("email")
        # attribute decisions come first, in input order, whatever happens to the call
        attrs = self.attributes.rest_filter("contact", data.get("custom_attributes") or {})
        company_attrs = []
        for entry in data.get("companies") or []:
            if entry.get("remove") is True:
                company_attrs.append({})
            else:
                company_attrs.append(self.attributes.rest_filter("company", entry.get("custom_attributes") or {}))
        target = None
        if uid is not None:
            target = self.find_ext(uid)
            if target is None and email is not None:
                holder = self.first_user_with_email(email)
                if holder is not None:
                    if holder["archived"]:
                        return  # 409 archived: contact_archived
                    if holder["external_id"] is not None:
                        return  # 409 conflict: E belongs to another user's contact
                    target = holder
        elif email is not None:
            target = self.first_user_with_email(email)
        else:
            return
        if target is not None and target["archived"]:
            return  # contact_archived
        if target is not None and email is not None:
            other = self.first_user_with_email(email, lambda c: c is not target)
            if other is not None and (target["email"] or "").lower() != email.lower():
                return  # 409 conflict on the update
        if target is None:
            target = self.new_contact(external_id=uid, email=email)
        else:
            self.set_identity(target, external_id=uid, email=email)
        self._write_fields(target, data)
        self._write_attrs(target, attrs)
        for entry, cattrs in zip(data.get("companies") or [], company_attrs):
            cid = entry.get("company_id")
            if entry.get("remove") is True:
                self.leave(target, cid)  # unknown company or not a member: nothing to do
                continue
            try:
                co = self.upsert_company(self._company_fields(entry), cattrs)
            except Failed:
                continue
            if len(target["companies"]) < 1000:
                self.join(target, co)

    def event_item(self, data):
        uid = data.get("user_id") or None
        email = data.get("email")
        name = data.get("event_name")
        created = as_int(data.get("created_at"))
        if self.api == "bulk":
            if not isinstance(name, str) or not name or not is_integer_num(data.get("created_at")):
                return
            if uid is None and email is None:
                return
            contact = self.resolve_event(uid, email if uid is None else None)
        else:
            contact = self.resolve_event(uid, email)
            if contact is None:
                return  # 404 user_not_found
        if contact is not None:
            who_key = "c:%d" % contact["seq"]
        elif uid is not None:
            who_key = "u:" + uid
        else:
            who_key = "e:" + (email or "").lower()
        key = who_key + "\0" + name + "\0" + str(created)
        if key in self.events:
            return
        self.events[key] = {"event_name": name, "created_at": created, "contact": contact,
                            "sent_as": uid if uid is not None else email, "metadata": data.get("metadata")}

    def resolve_event(self, uid, email):
        def usable(c):
            return c is not None and not c["merged"] and not c["archived"]
        if uid is not None:
            c = self.find_ext(uid)
            return c if usable(c) else None
        if email is not None:
            cands = [c for c in self.with_email(email) if usable(c)]
            users = [c for c in cands if c["role"] == "user"]
            return (users or cands or [None])[0]
        return None

    # -- output

    def normalized(self):
        contacts = []
        counts = {}
        for c in self.contacts:
            if c["merged"]:
                continue
            for cid in c["companies"]:
                counts[cid] = counts.get(cid, 0) + 1
            contacts.append(contact_form(c["external_id"], c["role"], c["email"], c["phone"], c["name"], c["avatar"],
                                         c["owner_id"], c["signed_up_at"], c["last_seen_at"],
                                         c["unsubscribed_from_emails"], c["custom_attributes"], c["companies"],
                                         c["archived"]))
        companies = []
        for cid, co in self.companies.items():
            companies.append(company_form(cid, co["name"], co["plan"], co["monthly_spend"], co["remote_created_at"],
                                          co["size"], co["website"], co["industry"], co["custom_attributes"],
                                          counts.get(cid, 0)))
        events = []
        for e in self.events.values():
            c = e["contact"]
            who = (c["external_id"] or c["email"]) if c is not None else e["sent_as"]
            events.append(event_form(e["event_name"], e["created_at"], who, e["metadata"]))
        return assemble(contacts, companies, events, self.attributes.json())


def _intval(v):
    return None if v is None else int(str(v))


def contact_form(ext, role, email, phone, name, avatar, owner, signed, seen, unsub, attrs, companies, archived):
    return {"external_id": ext, "role": role, "email": email, "phone": phone, "name": name, "avatar": avatar,
            "owner_id": _intval(owner), "signed_up_at": _intval(signed), "last_seen_at": _intval(seen),
            "unsubscribed_from_emails": bool(unsub), "custom_attributes": dict(attrs),
            "companies": sorted(companies), "archived": bool(archived)}


def company_form(cid, name, plan, spend, remote, size, website, industry, attrs, user_count):
    return {"company_id": cid, "name": name, "plan": plan, "monthly_spend": _intval(spend),
            "remote_created_at": _intval(remote), "size": _intval(size), "website": website, "industry": industry,
            "custom_attributes": dict(attrs), "user_count": user_count}


def event_form(name, created, who, metadata):
    return {"event_name": name, "created_at": _intval(created), "who": who, "metadata": metadata}


def assemble(contacts, companies, events, attributes):
    contacts.sort(key=lambda c: (c["external_id"] or "", c["email"] or "", canon(c)))
    companies.sort(key=lambda c: c["company_id"])
    events = sorted(events, key=canon)
    attributes = sorted(attributes, key=lambda a: (a["model"], a["name"], a["data_type"]))
    return {"contacts": contacts, "companies": companies, "events": events, "data_attributes": attributes}


# ---------------------------------------------------------------------------------------------
# Commands

def expect(items_path, seed_path, api):
    model = Model(api)
    if seed_path:
        with open(seed_path, encoding="utf-8") as f:
            model.seed(loads(f.read()))
    with open(items_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            request = loads(line)
            path = request.get("path")
            for item in request["body"]["items"]:
                data = item.get("data") or {}
                if path == "/bulk/users":
                    model.user_item(data)
                elif path == "/bulk/events":
                    model.event_item(data)
                else:
                    raise SystemExit("%s:%d: unknown path %r" % (items_path, n, path))
    return model.normalized()


def is_normalized(state):
    return (all("who" in e for e in state.get("events", []))
            and not any("id" in c for c in state.get("contacts", []) + state.get("companies", [])))


def normalize(state):
    if is_normalized(state):
        return state
    by_id = {c["id"]: c for c in state.get("contacts", [])}
    contacts = []
    for c in state.get("contacts", []):
        if c.get("merged_into"):
            continue
        contacts.append(contact_form(c.get("external_id"), c.get("role"), c.get("email"), c.get("phone"), c.get("name"),
                                     c.get("avatar"), c.get("owner_id"), c.get("signed_up_at"), c.get("last_seen_at"),
                                     c.get("unsubscribed_from_emails"), c.get("custom_attributes") or {},
                                     c.get("companies") or [], c.get("archived")))
    companies = [company_form(co["company_id"], co.get("name"), co.get("plan"), co.get("monthly_spend"),
                              co.get("remote_created_at"), co.get("size"), co.get("website"), co.get("industry"),
                              co.get("custom_attributes") or {}, _intval(co.get("user_count")))
                 for co in state.get("companies", [])]
    events = []
    for e in state.get("events", []):
        c = by_id.get(e.get("contact_id")) if e.get("contact_id") else None
        if c is not None:
            who = c.get("external_id") or c.get("email")
        else:
            who = e.get("user_id") or e.get("email")
        events.append(event_form(e["event_name"], e["created_at"], who, e.get("metadata")))
    attributes = [{"name": a["name"], "model": a["model"], "data_type": a["data_type"]}
                  for a in state.get("data_attributes", [])]
    return assemble(contacts, companies, events, attributes)


def load_normalized(path):
    with open(path, encoding="utf-8") as f:
        return normalize(loads(f.read()))


def _short(v, limit=160):
    text = canon(v)
    return text if len(text) <= limit else text[:limit] + "..."


def differences(a, b, limit=20):
    out = []

    def add(text):
        out.append(text)

    def keyed(items, key):
        d = {}
        for it in items:
            d.setdefault(key(it), []).append(it)
        return d

    ca = keyed(a.get("contacts", []), lambda c: (c["external_id"] or "", c["email"] or ""))
    cb = keyed(b.get("contacts", []), lambda c: (c["external_id"] or "", c["email"] or ""))
    for k in sorted(set(ca) | set(cb)):
        la, lb = ca.get(k, []), cb.get(k, [])
        name = "contact external_id=%r email=%r" % k
        if not lb:
            add("%s: only in A (%d)" % (name, len(la)))
            continue
        if not la:
            add("%s: only in B (%d)" % (name, len(lb)))
            continue
        if len(la) != len(lb):
            add("%s: %d in A, %d in B" % (name, len(la), len(lb)))
        for x, y in zip(la, lb):
            for f in sorted(set(x) | set(y)):
                if f == "custom_attributes":
                    xa, ya = x.get(f) or {}, y.get(f) or {}
                    for n in sorted(set(xa) | set(ya)):
                        if canon(xa.get(n, "<absent>")) != canon(ya.get(n, "<absent>")) or (n in xa) != (n in ya):
                            add("%s: custom_attributes.%s: A %s, B %s" % (name, n, _short(xa[n]) if n in xa else "absent",
                                                                          _short(ya[n]) if n in ya else "absent"))
                elif canon(x.get(f)) != canon(y.get(f)):
                    add("%s: %s: A %s, B %s" % (name, f, _short(x.get(f)), _short(y.get(f))))
    ka = keyed(a.get("companies", []), lambda c: c["company_id"])
    kb = keyed(b.get("companies", []), lambda c: c["company_id"])
    for k in sorted(set(ka) | set(kb)):
        if k not in kb:
            add("company %r: only in A" % k)
        elif k not in ka:
            add("company %r: only in B" % k)
        else:
            x, y = ka[k][0], kb[k][0]
            for f in sorted(set(x) | set(y)):
                if canon(x.get(f)) != canon(y.get(f)):
                    add("company %r: %s: A %s, B %s" % (k, f, _short(x.get(f)), _short(y.get(f))))
    for what in ("events", "data_attributes"):
        sa = sorted(canon(e) for e in a.get(what, []))
        sb = sorted(canon(e) for e in b.get(what, []))
        if sa != sb:
            ma, mb = _multiset(sa), _multiset(sb)
            only_a = sorted(k for k in ma if ma[k] > mb.get(k, 0))
            only_b = sorted(k for k in mb if mb[k] > ma.get(k, 0))
            add("%s: %d in A, %d in B; %d only in A, %d only in B" % (what, len(sa), len(sb), len(only_a), len(only_b)))
            for e in only_a[:5]:
                add("  only in A: " + (e if len(e) < 200 else e[:200] + "..."))
            for e in only_b[:5]:
                add("  only in B: " + (e if len(e) < 200 else e[:200] + "..."))
    total = len(out)
    if total > limit:
        out = out[:limit] + ["... %d differences in all" % total]
    return out


def _multiset(items):
    d = {}
    for i in items:
        d[i] = d.get(i, 0) + 1
    return d


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    e = sub.add_parser("expect", help="the expected state of a dry run's items")
    e.add_argument("--items", required=True, help="the NDJSON of `run --dry-run --api-version 1.4 --out`")
    e.add_argument("--seed", help="a sandbox seed document applied first")
    e.add_argument("--api", choices=["rest", "bulk"], default="rest")
    n = sub.add_parser("normalize", help="normalize a GET /sandbox/state answer")
    n.add_argument("state")
    d = sub.add_parser("diff", help="compare two states (raw or normalized); exit 1 when they differ")
    d.add_argument("a")
    d.add_argument("b")
    a = ap.parse_args(argv)
    if a.command == "expect":
        out = expect(a.items, a.seed, a.api)
    elif a.command == "normalize":
        out = load_normalized(a.state)
    else:
        lines = differences(load_normalized(a.a), load_normalized(a.b))
        if lines:
            print("\n".join(lines))
            return 1
        print("equal")
        return 0
    sys.stdout.write(dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

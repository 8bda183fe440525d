#!/usr/bin/env python3
"""Reference implementation of the Segment -> Intercom mapping (docs/contract.md).

Reads gzip (detected by magic bytes, multi-member, zero padding allowed) or plain NDJSON from
files, folders or `-`, maps every record per the contract §2-§6 and writes the `--dry-run`
request lines to stdout, batched exactly like the Swift tool (see `Batcher`).

    python3 bench/reference_mapper.py [--batch-size 100] [--report FILE|-] [--rejects FILE]
                                      [--exact-numbers] INPUT...

Numbers: by default records are parsed with orjson, which does not keep a number's source text,
so `2.50` comes out as `2.5` (in values and inside arrays' JSON text). `--exact-numbers` parses
with the standard library keeping every number's source text (slower) and is then exact.

Exit codes, the tool's (README, Exit codes): 0 ok, 1 some records rejected, 2 usage, 3 a damaged or
unreadable input (its good records still processed).
Standard library + orjson only.

Choices where the contract is silent (the Swift tool should make the same ones, or the contract
should say otherwise):
- `type` absent or null -> missing_type; any other non-string, or "" -> unknown_type. Types match
  ASCII-case-insensitively. White space (for blank lines) is space, tab, CR, LF.
- integrations: only JSON `false` switches off; `"Intercom": null` counts as missing; a
  non-object `integrations` is ignored; the keys `All`/`Intercom` are case-sensitive.
- invalid_json also covers: lone surrogate escapes, numbers that overflow a double (1e400),
  NaN/Infinity, a BOM that is not at the start of the stream. Duplicate keys: the last value wins.
- Dates: `T`/`Z` upper case only; hh 00-23, mm/ss 00-59 (no leap second); offsets exactly
  `+hh:mm`/`-hh:mm` up to 23:59; years 0000-9999 (proleptic Gregorian); exactly 10^11 is still
  seconds; floats are floored (negative too); a result outside Int64 is invalid.
- identify: an invalid `traits.lastRequestAt` is not replaced by the record timestamp (as for the
  record timestamp); a present-but-invalid record timestamp does not reject an identify. Both
  leave `last_request_at` out and count `invalid_last_request_at`. With `context.active == false`
  nothing of the three fields is evaluated (no warning).
- name: `traits.name` if a non-empty string (as is); else non-empty string firstName/lastName,
  joined with one space and trimmed; empty after trimming -> left out. email, phone, ip,
  userAgent, a company's name/plan/website/industry: non-empty strings only. Unsubscribed: bools.
- `traits.companies` entries: objects, or non-empty strings (like a string `company`); others and
  a non-array `companies` are ignored.
- Company: `id`, `company_id`, `employees`, `size` and the named fields never become custom
  attributes, even when unusable; `remove` other than `true` is an ordinary custom attribute.
  `size` is a JSON integer token (250.0 and 2.5e2 are not) or a string that is exactly a JSON
  integer, within Int64.
- revenue: a number (not a bool); amount = round(revenue * 100) computed in binary64 with ties
  away from zero (0.285 -> 28, since 0.285*100 = 28.4999...; 2.675 -> 268); currency a non-empty
  string lowercased, else "usd"; `currency` is dropped whenever `price` is made. A source key
  `price` after `revenue` replaces the computed price (the later value wins, in the first place).
- `_date` metadata keys: numbers are converted by the date rules too (ms -> s, floored); an
  invalid string stays as it is, without a warning.
- Warnings count once per cut string (string_truncated) and once per event (metadata_keys_dropped).
- Input: when a gzip input breaks (truncated, corrupt, garbage after a member) the bytes after the
  last newline are not a record. Zero bytes are accepted between members too. A BOM is removed
  only at the start of each input's decompressed stream. Line numbers count per input, blank
  lines included. Folders are walked recursively, every file, in byte order of relative path.
- Report: a dry run has `uploaded` 0/0, `failed` 0, `retries` 0; an extra `input_errors` list.
"""

import argparse
import base64
import decimal
import hashlib
import json
import math
import os
import re
import sys
import time
import zlib

import orjson

# ---------------------------------------------------------------------------------------------
# Numbers that keep their source text (--exact-numbers)


class Num(float):
    """A JSON number with fraction or exponent, carrying its source text."""

    __slots__ = ("text",)


def _num_from_text(s):
    n = Num(s)
    n.text = s
    return n


def _int_from_text(s):
    if s == "-0":  # the only JSON integer whose int() does not print back as written
        return _num_from_text(s)
    i = int(s)
    if len(s) > 18 and not (INT64_MIN <= i <= UINT64_MAX):
        return _num_from_text(s)  # as orjson: beyond 64 bits a number is not an integer
    return i


def _no_constant(s):
    raise ValueError("not JSON: " + s)


_MARK = "\x00\x00num:"
_MARK_RE = re.compile(rb'"\\u0000\\u0000num:([^"]*)"')


def _num_default(o):
    if type(o) is Num:
        return _MARK + o.text
    raise TypeError


def _dumps_exact(obj):
    try:
        out = orjson.dumps(obj, default=_num_default)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes
        return _py_dumps(obj).encode()
    if b"\\u0000\\u0000num:" in out:
        out = _MARK_RE.sub(rb"\1", out)
    return out


def _dumps_fast(obj):
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return _py_dumps(obj).encode()


def _py_dumps(v):
    """Compact JSON text, as §6 asks, for what orjson will not write (very deep nesting)."""
    t = type(v)
    if t is str:
        return json.dumps(v, ensure_ascii=False)
    if t is dict:
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _py_dumps(x)
                              for k, x in v.items()) + "}"
    if t is list:
        return "[" + ",".join(_py_dumps(x) for x in v) + "]"
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    return num_text(v)


INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
MISSING = object()


def num_text(v):
    """Source text of a number (exact for int and Num; orjson's shortest form for a float)."""
    t = type(v)
    if t is int:
        return str(v)
    if t is Num:
        return v.text
    return orjson.dumps(v).decode()


# ---------------------------------------------------------------------------------------------
# Dates (§2): ISO strings of the accepted forms, bare dates, unix seconds / milliseconds


def _days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_MDAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_date_cache = {}


def _date_days(s10):
    """'YYYY-MM-DD' -> days since 1970-01-01, or None."""
    r = _date_cache.get(s10, MISSING)
    if r is not MISSING:
        return r
    r = None
    if s10[4] == "-" and s10[7] == "-":
        ys, ms, ds = s10[0:4], s10[5:7], s10[8:10]
        if ys.isdigit() and ms.isdigit() and ds.isdigit():
            y, m, d = int(ys), int(ms), int(ds)
            if 1 <= m <= 12:
                dim = _MDAYS[m]
                if m == 2 and (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
                    dim = 29
                if 1 <= d <= dim:
                    r = _days_from_civil(y, m, d)
    if len(_date_cache) < 100000:
        _date_cache[s10] = r
    return r


_prefix_cache = {}
_offset_cache = {}
_DIGITS = "0123456789"


def _prefix16(p):
    """'YYYY-MM-DDTHH:MM' -> unix seconds of that minute, or None (cached: few distinct)."""
    r = _prefix_cache.get(p, MISSING)
    if r is MISSING:
        r = None
        if p.isascii() and p[10] == "T" and p[13] == ":":
            d = _date_days(p[:10])
            hs, ms = p[11:13], p[14:16]
            if d is not None and hs.isdigit() and ms.isdigit():
                h, m = int(hs), int(ms)
                if h <= 23 and m <= 59:
                    r = d * 86400 + h * 3600 + m * 60
        if len(_prefix_cache) < 200000:
            _prefix_cache[p] = r
    return r


def _offset(t):
    """'+hh:mm' / '-hh:mm' -> seconds east of UTC, or None."""
    r = _offset_cache.get(t, MISSING)
    if r is MISSING:
        r = None
        if len(t) == 6 and (t[0] == "+" or t[0] == "-") and t[3] == ":" and t.isascii():
            oh, om = t[1:3], t[4:6]
            if oh.isdigit() and om.isdigit() and int(oh) <= 23 and int(om) <= 59:
                r = int(oh) * 3600 + int(om) * 60
                if t[0] == "-":
                    r = -r
        if len(_offset_cache) < 10000:
            _offset_cache[t] = r
    return r


def parse_iso(s):
    """Accepted ISO forms -> whole unix seconds (rounded down), else None.

    YYYY-MM-DD, or YYYY-MM-DDTHH:MM:SS[.fraction of any length][Z|+hh:mm|-hh:mm]."""
    n = len(s)
    if n < 19:
        if n == 10 and s.isascii():
            d = _date_days(s)
            return None if d is None else d * 86400
        return None
    base = _prefix16(s[:16])
    if base is None or s[16] != ":":
        return None
    ss = s[17:19]
    if not (ss.isascii() and ss.isdigit()):
        return None
    se = int(ss)
    if se > 59:
        return None
    if n == 19:
        return base + se
    tail = s[19:]
    if tail[0] == ".":
        rest = tail[1:].lstrip(_DIGITS)
        if len(rest) == n - 20:  # no digit after the dot
            return None
        tail = rest
        if not tail:
            return base + se
    if tail == "Z":
        return base + se
    off = _offset(tail)
    if off is None:
        return None
    # The fraction is >= 0 and only added, so "rounded down" is: drop it.
    return base + se - off


def parse_date(v):
    """Any date value (§2 rules) -> int unix seconds, or None when invalid."""
    t = type(v)
    if t is str:
        return parse_iso(v)
    if t is int:
        r = v // 1000 if v > 100_000_000_000 else v
    elif t is Num:
        # Exact on the source digits, as the Swift mapper: through a float, -17.000...001 floors
        # to -17 and milliseconds can round up across a second. floor(floor(x) / 1000) is
        # floor(x / 1000). Far beyond Int64, no need to build the integer.
        d = decimal.Decimal(v.text)
        if not d.is_finite() or d.adjusted() > 30:
            return None
        r = math.floor(d) // 1000 if d > 100_000_000_000 else math.floor(d)
    elif t is float:
        if not math.isfinite(v):
            return None
        r = math.floor(v / 1000.0 if v > 100_000_000_000 else v)
    else:
        return None
    if INT64_MIN <= r <= INT64_MAX:
        return r
    return None


_TS_FIELDS = ("timestamp", "originalTimestamp", "receivedAt", "sentAt")


def record_timestamp(rec):
    """(present, seconds-or-None): the first of the four fields present and not null decides."""
    for f in _TS_FIELDS:
        v = rec.get(f)
        if v is not None:
            return True, parse_date(v)
    return False, None


# ---------------------------------------------------------------------------------------------
# Values (§6)

_NAME_TABLE = {c: "_" for c in list(range(0x20)) + [0x7F, ord("."), ord("$")]}
_name_cache = {}


def attr_name(k):
    r = _name_cache.get(k)
    if r is None:
        r = k.translate(_NAME_TABLE)
        if len(_name_cache) < 200000:
            _name_cache[k] = r
    return r


class Ctx:
    """Per-run state: warning counts and the number mode."""

    def __init__(self, exact):
        self.exact = exact
        self.warnings = {}
        self.dumps = _dumps_exact if exact else _dumps_fast

    def warn(self, code):
        w = self.warnings
        w[code] = w.get(code, 0) + 1

    def array_text(self, arr):
        return self.dumps(arr).decode()


def flatten_into(ctx, out, prefix, obj, cut):
    """Flatten `obj` (a dict) into `out` with `_`-joined sanitised names.

    Arrays become compact JSON text; strings longer than 255 scalars are cut when `cut`.
    A repeated name keeps its first place and takes the later value (dict semantics)."""
    for k, v in obj.items():
        name = prefix + attr_name(k)
        t = type(v)
        if t is dict:
            if v:
                flatten_into(ctx, out, name + "_", v, cut)
            continue
        if t is list:
            v = ctx.array_text(v)
            t = str
        if t is str and cut and len(v) > 255:
            v = v[:255]
            ctx.warn("string_truncated")
        out[name] = v


def is_num(v):
    t = type(v)
    return t is int or t is float or t is Num


def id_text(v):
    """A non-empty string, or a number as its source text; else None."""
    t = type(v)
    if t is str:
        return v or None
    if t is int or t is float or t is Num:
        return num_text(v)
    return None


def nonempty_str(v):
    return v if type(v) is str and v else None


_JSON_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_JSON_INT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")


def monthly_spend(ctx, v):
    t = type(v)
    if t is int or t is float or t is Num:
        return v
    if t is str and _JSON_NUMBER_RE.match(v):
        if ctx.exact:
            return _num_from_text(v)
        if "." in v or "e" in v or "E" in v:
            f = float(v)
            return f if math.isfinite(f) else None
        return int(v)
    return None


def size_value(v):
    t = type(v)
    if t is int:
        return v if INT64_MIN <= v <= INT64_MAX else None
    if t is str and _JSON_INT_RE.match(v):
        i = int(v)
        return i if INT64_MIN <= i <= INT64_MAX else None
    return None


def md5_hex(s):
    return hashlib.md5(s.encode("utf-8")).hexdigest()


_COMPANY_NAMED = frozenset(
    ("id", "company_id", "name", "plan", "monthlySpend", "createdAt", "employees", "size",
     "website", "industry", "userId")
)


def build_company(ctx, tr, group_id):
    """A company from traits (§5). `group_id` is the group call's id text, else None."""
    if group_id is not None:
        cid = group_id
    else:
        cid = id_text(tr.get("id")) or id_text(tr.get("company_id"))
        if cid is None:
            nm = nonempty_str(tr.get("name"))
            if nm is None:
                return None
            cid = md5_hex(nm)
    if tr.get("remove") is True:
        return {"company_id": cid, "remove": True}
    c = {"company_id": cid}
    v = nonempty_str(tr.get("name"))
    if v is not None:
        c["name"] = v
    v = nonempty_str(tr.get("plan"))
    if v is not None:
        c["plan"] = v
    v = tr.get("monthlySpend")
    if v is not None:
        v = monthly_spend(ctx, v)
        if v is not None:
            c["monthly_spend"] = v
    v = tr.get("createdAt")
    if v is not None:
        d = parse_date(v)
        if d is None:
            ctx.warn("invalid_company_created_at")
        else:
            c["remote_created_at"] = d
    v = size_value(tr.get("employees"))
    if v is None:
        v = size_value(tr.get("size"))
    if v is not None:
        c["size"] = v
    v = nonempty_str(tr.get("website"))
    if v is not None:
        c["website"] = v
    v = nonempty_str(tr.get("industry"))
    if v is not None:
        c["industry"] = v
    ca = {}
    for k, v in tr.items():
        if k in _COMPANY_NAMED:
            continue
        name = attr_name(k)
        t = type(v)
        if t is dict:
            if v:
                flatten_into(ctx, ca, name + "_", v, True)
            continue
        if t is list:
            v = ctx.array_text(v)
            t = str
        if t is str and len(v) > 255:
            v = v[:255]
            ctx.warn("string_truncated")
        ca[name] = v
    if ca:
        c["custom_attributes"] = ca
    return c


def string_company(name):
    return {"company_id": md5_hex(name), "name": name}


# ---------------------------------------------------------------------------------------------
# Records (§2-§5)

_USER_RESERVED = frozenset(
    ("email", "name", "firstName", "lastName", "phone", "createdAt", "lastRequestAt", "company",
     "companies", "unsubscribedFromEmails", "id", "userId")
)
_TYPES = {
    "identify": "identify", "track": "track", "group": "group",
    "page": "unsupported", "screen": "unsupported", "alias": "unsupported",
}
_EMPTY = {}

# Results of map_record: (bucket, reason_or_kind, data_or_detail)
USER, EVENT, SKIP, REJECT = 0, 1, 2, 3


def _is_rich(v):
    if len(v) != 2:
        return False
    return ("amount" in v and "currency" in v) or ("url" in v and "value" in v)


def _round_half_away(x):
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def build_metadata(ctx, props):
    md = {}
    rev = props.get("revenue")
    price = None
    if is_num(rev):
        x = rev * 100
        if math.isfinite(x):
            cents = _round_half_away(x)
            if INT64_MIN <= cents <= INT64_MAX:
                cur = props.get("currency")
                cur = cur.lower() if type(cur) is str and cur else "usd"
                price = {"amount": cents, "currency": cur}
    for k, v in props.items():
        if price is not None:
            if k == "revenue":
                md["price"] = price
                continue
            if k == "currency":
                continue
        t = type(v)
        if t is dict:
            if _is_rich(v):
                md[attr_name(k)] = v
            elif v:
                flatten_into(ctx, md, attr_name(k) + "_", v, False)
            continue
        if t is list:
            v = ctx.array_text(v)
        elif k.endswith("_date") and v is not None and t is not bool:
            d = parse_date(v)
            if d is not None:
                v = d
        md[attr_name(k)] = v
    if len(md) > 10:
        ctx.warn("metadata_keys_dropped")
        md = dict(list(md.items())[:10])
    return md


def map_record(ctx, rec):
    if type(rec) is not dict:
        return REJECT, "not_an_object", "the line is JSON but not an object"
    typ = rec.get("type")
    if typ is None:
        return REJECT, "missing_type", "no type"
    if type(typ) is not str:
        return REJECT, "unknown_type", "type is not a string"
    kind = _TYPES.get(typ)
    if kind is None and typ.isascii():
        kind = _TYPES.get(typ.lower())
    if kind == "unsupported":
        return SKIP, "unsupported_type", None
    if kind is None:
        return REJECT, "unknown_type", "unknown type " + json.dumps(typ, ensure_ascii=False)

    integ = rec.get("integrations")
    if type(integ) is dict and integ:
        ic = integ.get("Intercom")
        if ic is False or (integ.get("All") is False and ic is None):
            return SKIP, "integrations_disabled", None

    context = rec.get("context")
    if type(context) is not dict:
        context = _EMPTY
    ctraits = context.get("traits")
    if type(ctraits) is not dict:
        ctraits = _EMPTY

    if kind == "track":
        event = rec.get("event")
        if type(event) is not str or not event:
            return REJECT, "missing_event_name", "event is missing or not a non-empty string"
        present, ts = record_timestamp(rec)
        if ts is None:
            return REJECT, "invalid_timestamp", (
                "timestamp is invalid" if present else "no timestamp")
        traits = ctraits
    elif kind == "group":
        gid = id_text(rec.get("groupId"))
        if gid is None:
            return REJECT, "missing_group_id", "groupId is missing or not a string or number"
        traits = ctraits
    else:
        traits = rec.get("traits")
        if type(traits) is not dict or not traits:
            traits = ctraits

    user_id = id_text(rec.get("userId")) or id_text(traits.get("userId")) or id_text(traits.get("id"))
    email = nonempty_str(traits.get("email")) or nonempty_str(ctraits.get("email"))
    props = None
    if kind == "track":
        props = rec.get("properties")
        if type(props) is not dict:
            props = _EMPTY
        if email is None:
            email = nonempty_str(props.get("email"))
    if user_id is None and email is None:
        return SKIP, "anonymous", None

    if kind == "track":
        data = {"event_name": event, "created_at": ts}
        if user_id is not None:
            data["user_id"] = user_id
        else:
            data["email"] = email
        if props:
            md = build_metadata(ctx, props)
            if md:
                data["metadata"] = md
        return EVENT, None, data

    data = {}
    if user_id is not None:
        data["user_id"] = user_id
    if email is not None:
        data["email"] = email

    if kind == "group":
        gtraits = rec.get("traits")
        if type(gtraits) is not dict:
            gtraits = _EMPTY
        data["companies"] = [build_company(ctx, gtraits, gid)]
        return USER, None, data

    # identify
    v = nonempty_str(traits.get("name"))
    if v is None:
        fn = nonempty_str(traits.get("firstName"))
        ln = nonempty_str(traits.get("lastName"))
        if fn is not None and ln is not None:
            v = (fn + " " + ln).strip()
        elif fn is not None or ln is not None:
            v = (fn or ln).strip()
        v = v or None
    if v is not None:
        data["name"] = v
    v = nonempty_str(traits.get("phone"))
    if v is not None:
        data["phone"] = v
    v = traits.get("createdAt")
    if v is not None:
        d = parse_date(v)
        if d is None:
            ctx.warn("invalid_created_at")
        else:
            data["signed_up_at"] = d
    if context.get("active") is not False:
        v = traits.get("lastRequestAt")
        if v is not None:
            d = parse_date(v)
        else:
            present, d = record_timestamp(rec)
            if not present:
                d = MISSING
        if d is None:
            ctx.warn("invalid_last_request_at")
        elif d is not MISSING:
            data["last_request_at"] = d
        v = nonempty_str(context.get("ip"))
        if v is not None:
            data["last_seen_ip"] = v
        v = nonempty_str(context.get("userAgent"))
        if v is not None:
            data["last_seen_user_agent"] = v
    unsub = None
    ic = context.get("Intercom")
    if type(ic) is dict:
        u = ic.get("unsubscribedFromEmails")
        if type(u) is bool:
            unsub = u
    if unsub is None:
        u = traits.get("unsubscribedFromEmails")
        if type(u) is bool:
            unsub = u
    if unsub is not None:
        data["unsubscribed_from_emails"] = unsub
    companies = []
    co = traits.get("company")
    if type(co) is dict:
        c = build_company(ctx, co, None)
        if c is not None:
            companies.append(c)
    elif type(co) is str and co:
        companies.append(string_company(co))
    cs = traits.get("companies")
    if type(cs) is list:
        for co in cs:
            if type(co) is dict:
                c = build_company(ctx, co, None)
                if c is not None:
                    companies.append(c)
            elif type(co) is str and co:
                companies.append(string_company(co))
    if companies:
        data["companies"] = companies
    ca = {}
    for k, v in traits.items():
        if k in _USER_RESERVED:
            continue
        name = attr_name(k)
        t = type(v)
        if t is dict:
            if v:
                flatten_into(ctx, ca, name + "_", v, True)
            continue
        if t is list:
            v = ctx.array_text(v)
            t = str
        if t is str and len(v) > 255:
            v = v[:255]
            ctx.warn("string_truncated")
        ca[name] = v
    if ca:
        data["custom_attributes"] = ca
    return USER, None, data


# ---------------------------------------------------------------------------------------------
# Batching (the Swift tool's rule)


class Batcher:
    """Two pending batches, users and events, in input order.

    A full users batch is written at once, and then the pending events too when they hold a record
    older than that users batch's first one (a checkpoint is never held back far behind what was
    sent). A full events batch first writes any pending users (a user must exist before the events
    that follow it), then itself. At the end: users, then events."""

    def __init__(self, out, size, dumps):
        self.out = out
        self.size = size
        self.dumps = dumps
        self.users = []
        self.events = []
        self.requests = 0
        self.added = 0  # items added so far: their order in the input
        self.users_first = 0
        self.events_first = 0

    def _write(self, path, items):
        self.out.write(b'{"method":"POST","path":"' + path + b'","body":{"items":'
                       + self.dumps(items) + b"}}\n")
        self.requests += 1

    def flush_users(self):
        self._write(b"/bulk/users", self.users)
        self.users = []

    def flush_events(self):
        self._write(b"/bulk/events", self.events)
        self.events = []

    def add_user(self, data):
        if not self.users:
            self.users_first = self.added
        self.added += 1
        self.users.append({"method": "post", "data_type": "user", "data": data})
        if len(self.users) >= self.size:
            self.flush_users()
            if self.events and self.events_first < self.users_first:
                self.flush_events()

    def add_event(self, data):
        if not self.events:
            self.events_first = self.added
        self.added += 1
        self.events.append({"method": "post", "data_type": "event", "data": data})
        if len(self.events) >= self.size:
            if self.users:
                self.flush_users()
            self.flush_events()

    def finish(self):
        if self.users:
            self.flush_users()
        if self.events:
            self.flush_events()


# ---------------------------------------------------------------------------------------------
# Input: byte sources and lines


class InputError(Exception):
    pass


CHUNK = 1 << 20


def _read_chunks(f):
    while True:
        b = f.read(CHUNK)
        if not b:
            return
        yield b


def gunzip_chunks(first, rest):
    """Inflate a (multi-member) gzip stream given as `first` bytes + iterator `rest`.

    Yields decompressed chunks; raises InputError (after yielding all good data) when the
    stream is truncated, corrupt, or has garbage after a member other than zero padding."""
    d = zlib.decompressobj(31)
    buf = first
    consumed = 0  # compressed bytes fully handed to earlier members
    member_start = 0
    in_member = True
    while True:
        if in_member:
            if buf:
                try:
                    out = d.decompress(buf)
                except zlib.error as e:
                    raise InputError("corrupt gzip data in the member at compressed byte %d: %s"
                                     % (member_start, e))
                if out:
                    yield out
                if d.eof:
                    used = len(buf) - len(d.unused_data)
                    consumed += used
                    buf = d.unused_data
                    in_member = False
                    continue
                consumed += len(buf)
                buf = b""
            nxt = next(rest, None)
            if nxt is None:
                raise InputError("gzip stream truncated: it ends inside the member that starts at "
                                 "compressed byte %d (the stream ends at compressed byte %d)" % (member_start, consumed))
            buf = nxt
        else:
            # between members: zero padding, another member, or garbage
            stripped = buf.lstrip(b"\x00")
            consumed += len(buf) - len(stripped)
            buf = stripped
            if not buf:
                nxt = next(rest, None)
                if nxt is None:
                    return
                buf = nxt
                continue
            if len(buf) < 2:
                nxt = next(rest, None)
                if nxt is not None:
                    buf += nxt
                    continue
            if buf[:2] == b"\x1f\x8b":
                d = zlib.decompressobj(31)
                member_start = consumed
                in_member = True
                continue
            raise InputError("garbage after the gzip member that ends at compressed byte %d"
                             % consumed)


def open_source(path):
    """Decompressed byte chunks of one input. Raises InputError for an unreadable file."""
    if path == "-":
        f = sys.stdin.buffer
        close = False
    else:
        try:
            f = open(path, "rb")
        except OSError as e:
            raise InputError("cannot open: %s" % e.strerror)
        close = True
    try:
        rest = _read_chunks(f)
        first = b""
        for b in rest:
            first += b
            if len(first) >= 2:
                break
        if first[:2] == b"\x1f\x8b":
            yield from gunzip_chunks(first, rest)
        else:
            if first:
                yield first
            yield from rest
    except OSError as e:
        raise InputError("read error: %s" % e.strerror)
    finally:
        if close:
            f.close()


def expand_inputs(args):
    out = []
    for a in args:
        if a != "-" and os.path.isdir(a):
            rels = []
            for root, dirs, files in os.walk(a):
                for fn in files:
                    full = os.path.join(root, fn)
                    rels.append(os.fsencode(os.path.relpath(full, a)))
            rels.sort()
            for r in rels:
                out.append(os.path.join(a, os.fsdecode(r)))
        else:
            out.append(a)
    return out


# ---------------------------------------------------------------------------------------------
# The run


class Runner:
    def __init__(self, exact, batch_size, out, rejects):
        self.ctx = Ctx(exact)
        self.exact = exact
        self.batcher = Batcher(out, batch_size, self.ctx.dumps)
        self.rejects = rejects
        self.records = 0
        self.users = 0
        self.events = 0
        self.skipped = {}
        self.rejected = {}
        self.input_errors = []

    def _reject(self, source, lineno, reason, detail, line):
        r = self.rejected
        r[reason] = r.get(reason, 0) + 1
        if self.rejects is not None:
            obj = {"source": source, "line": lineno, "reason": reason, "detail": detail}
            try:
                obj["record"] = line.decode("utf-8")
            except UnicodeDecodeError:
                obj["record_base64"] = base64.b64encode(line).decode()
            self.rejects.write(orjson.dumps(obj) + b"\n")

    def _line(self, source, lineno, line):
        if line[-1:] == b"\r":
            line = line[:-1]
        if not line:
            return
        c = line[0]
        if c != 123 and not line.strip(b" \t\r\n"):
            return
        self.records += 1
        try:
            rec = orjson.loads(line)
            if self.exact:
                rec = json.loads(line.decode("utf-8"), parse_float=_num_from_text,
                                 parse_int=_int_from_text, parse_constant=_no_constant)
        except (orjson.JSONDecodeError, ValueError) as e:
            self._reject(source, lineno, "invalid_json", str(e), line)
            return
        bucket, reason, data = map_record(self.ctx, rec)
        if bucket == EVENT:
            self.events += 1
            self.batcher.add_event(data)
        elif bucket == USER:
            self.users += 1
            self.batcher.add_user(data)
        elif bucket == SKIP:
            s = self.skipped
            s[reason] = s.get(reason, 0) + 1
        else:
            self._reject(source, lineno, reason, data, line)

    def run_source(self, source):
        lineno = 0
        carry = b""
        first = True
        try:
            for chunk in open_source(source):
                if first:
                    carry += chunk
                    if len(carry) < 3:
                        continue
                    if carry[:3] == b"\xef\xbb\xbf":
                        carry = carry[3:]
                    first = False
                    chunk = carry
                    carry = b""
                data = carry + chunk if carry else chunk
                parts = data.split(b"\n")
                carry = parts.pop()
                for line in parts:
                    lineno += 1
                    self._line(source, lineno, line)
        except InputError as e:
            # the bytes after the last newline belong to the break: not a record
            msg = "%s: %s (after line %d)" % (source, e, lineno)
            self.input_errors.append(msg)
            print("error: " + msg, file=sys.stderr)
            return
        if first and carry[:3] == b"\xef\xbb\xbf":
            carry = carry[3:]
        if carry:
            lineno += 1
            self._line(source, lineno, carry)

    def report(self, elapsed):
        return {
            "records": self.records,
            "mapped": {"users": self.users, "events": self.events},
            "skipped": dict(sorted(self.skipped.items())),
            "rejected": dict(sorted(self.rejected.items())),
            "warnings": dict(sorted(self.ctx.warnings.items())),
            "uploaded": {"users": 0, "events": 0},
            "failed": 0,
            "requests": self.batcher.requests,
            "retries": 0,
            "elapsed_seconds": round(elapsed, 3),
            "input_errors": self.input_errors,
        }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="files, folders or - (stdin)")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--report", metavar="FILE", help="write the run report JSON here (- = stderr)")
    ap.add_argument("--rejects", metavar="FILE", help="write rejected records here (NDJSON)")
    ap.add_argument("--exact-numbers", action="store_true",
                    help="keep numbers' source text (stdlib parser, slower)")
    ap.add_argument("-o", "--output", metavar="FILE", help="dry-run lines here instead of stdout")
    a = ap.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))  # orjson reads 1024+ levels
    if not 1 <= a.batch_size <= 100:
        ap.error("--batch-size must be 1..100")
    t0 = time.monotonic()
    out = open(a.output, "wb") if a.output else sys.stdout.buffer
    rejects = open(a.rejects, "wb") if a.rejects else None
    r = Runner(a.exact_numbers, a.batch_size, out, rejects)
    for src in expand_inputs(a.inputs):
        r.run_source(src)
    r.batcher.finish()
    out.flush()
    if a.output:
        out.close()
    if rejects is not None:
        rejects.close()
    rep = orjson.dumps(r.report(time.monotonic() - t0), option=orjson.OPT_INDENT_2) + b"\n"
    if a.report == "-":
        sys.stderr.buffer.write(rep)
    elif a.report:
        with open(a.report, "wb") as f:
            f.write(rep)
    return 3 if r.input_errors else 1 if r.rejected else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Compare two --dry-run outputs (one JSON request a line) and print the first difference.

    python3 bench/compare_outputs.py A B [--ignore-key-order] [--strict-strings] [--all]

Each line is parsed as JSON; numbers are compared by value (2.50 == 2.5 == 2.500, but 1 != true).
By default a string pair that differs is also accepted when both are JSON arrays (an array's
compact text, §6) or both JSON numbers (a numeric id's text) that are equal once parsed: that is
the one documented difference of the orjson reference (numbers lose their source text). Pass
--strict-strings to compare strings exactly (use it against `reference_mapper.py --exact-numbers`).
Object key order is compared too unless --ignore-key-order.

Exit: 0 same, 1 different, 2 usage or unreadable input. Standard library only.
"""

import argparse
import json
import sys
from decimal import Decimal


def load(path):
    f = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        rows = []
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line, parse_float=Decimal))
            except ValueError as e:
                raise SystemExit("error: %s line %d is not JSON: %s" % (path, n, e))
        return rows
    finally:
        if f is not sys.stdin.buffer:
            f.close()


class Diff(Exception):
    pass


def _kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, Decimal)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _show(v):
    s = json.dumps(v, ensure_ascii=False, default=str)
    return s if len(s) <= 200 else s[:197] + "..."


class Comparer:
    def __init__(self, ignore_key_order, strict_strings):
        self.ignore_key_order = ignore_key_order
        self.strict_strings = strict_strings
        self.normalised = 0  # string pairs accepted only after parsing them

    def eq(self, a, b, path):
        ka, kb = _kind(a), _kind(b)
        if ka != kb:
            raise Diff("%s: A is %s %s, B is %s %s" % (path, ka, _show(a), kb, _show(b)))
        if ka == "object":
            for k in a:
                if k not in b:
                    raise Diff("%s: key %r only in A (= %s)" % (path, k, _show(a[k])))
            for k in b:
                if k not in a:
                    raise Diff("%s: key %r only in B (= %s)" % (path, k, _show(b[k])))
            if not self.ignore_key_order and list(a) != list(b):
                raise Diff("%s: keys in another order: A %s, B %s" % (path, list(a), list(b)))
            for k in a:
                self.eq(a[k], b[k], "%s.%s" % (path, k))
        elif ka == "array":
            for i, (x, y) in enumerate(zip(a, b)):
                self.eq(x, y, "%s[%d]" % (path, i))
            if len(a) != len(b):
                raise Diff("%s: A has %d elements, B has %d" % (path, len(a), len(b)))
        elif ka == "string":
            if a != b and not self._same_parsed(a, b):
                raise Diff("%s: A %s, B %s" % (path, _show(a), _show(b)))
        elif a != b:
            raise Diff("%s: A %s, B %s" % (path, _show(a), _show(b)))

    def _same_parsed(self, a, b):
        if self.strict_strings or not a or not b:
            return False
        arrays = a[0] == "[" and b[0] == "["
        numbers = a[0] in "-0123456789" and b[0] in "-0123456789"
        if not (arrays or numbers):
            return False
        try:
            pa = json.loads(a, parse_float=Decimal)
            pb = json.loads(b, parse_float=Decimal)
        except ValueError:
            return False
        if _kind(pa) != _kind(pb) or _kind(pa) not in ("array", "number"):
            return False
        try:
            self.eq(pa, pb, "")
        except Diff:
            return False
        self.normalised += 1
        return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--ignore-key-order", action="store_true")
    ap.add_argument("--strict-strings", action="store_true",
                    help="no parsing of array/number strings before comparing them")
    ap.add_argument("--all", action="store_true", help="list every differing request, not just the first")
    args = ap.parse_args(argv)
    try:
        ra, rb = load(args.a), load(args.b)
    except OSError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    c = Comparer(args.ignore_key_order, args.strict_strings)
    diffs = 0
    for i, (x, y) in enumerate(zip(ra, rb), 1):
        where = "request %d (%s %s)" % (i, x.get("method") if isinstance(x, dict) else "?",
                                        x.get("path") if isinstance(x, dict) else "?")
        try:
            c.eq(x, y, where)
        except Diff as d:
            print(d)
            diffs += 1
            if not args.all:
                break
    if len(ra) != len(rb) and (args.all or not diffs):
        print("A has %d requests, B has %d" % (len(ra), len(rb)))
        diffs += 1
    if diffs:
        return 1
    items = sum(len(r.get("body", {}).get("items", [])) for r in ra if isinstance(r, dict))
    note = (", %d string(s) equal only after parsing them as JSON" % c.normalised) if c.normalised else ""
    print("same: %d requests, %d items%s" % (len(ra), items, note))
    return 0


if __name__ == "__main__":
    sys.exit(main())

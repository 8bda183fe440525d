#!/usr/bin/env python3
"""REST mode's figures: calls per mapped item (ours, the peers' schemes, the floor) and the share
of the rate budget a run uses, measured against the project's sandbox.

    python3 bench/rest_calls.py INPUT... [--rate-limit N] [--latency-ms MS] [--binary PATH]

It starts a fresh sandbox (`--rate-limit` per 10-second window, `--latency-ms` per answer), runs
`intercom-backfill run --api-version 2.14` over INPUT into a new state folder, and prints:

- calls per mapped item: ours (the report's `requests`), the peers' schemes as contract §8.4
  counts them (the report's `peer_calls`: 2 per identify plus 2 per company it names, 1 per track
  plus 1 when only an email is known, 3 per group), and the floor: every contact written once,
  every company upserted once, every membership made or left once, every event once, every
  attribute created once, plus the two listings; computed here from a bulk dry run of the same
  input, independently of the REST uploader;
- the run's peak RSS (VmHWM from /proc, on Linux);
- with a rate limit, the share of the allowed budget used: calls / (limit x 10-second windows the
  run touched; the first and last are partial, so this is a lower bound), and the 429s.

A `--rate-limit` makes the run budget-bound, as a real backfill is (Intercom allows about 10,000
calls a minute): calls then wait for budget, and updates of one contact or company that wait
merge. Without one, calls never wait and nothing merges.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "bench-rest-calls"


def floor_calls(dry_run_path):
    """The fewest calls that give the final state, from the mapped items of a bulk dry run."""
    contacts, companies, memberships, removals, attributes = set(), set(), set(), set(), set()
    events = 0
    with open(dry_run_path, encoding="utf-8") as f:
        for line in f:
            request = json.loads(line)
            for item in request["body"]["items"]:
                data = item["data"]
                if item["data_type"] == "event":
                    events += 1
                    continue
                key = data.get("user_id") or (data.get("email") or "").lower()
                contacts.add(key)
                for name in data.get("custom_attributes") or {}:
                    attributes.add(("contact", name))
                for company in data.get("companies") or []:
                    cid = company.get("company_id")
                    if company.get("remove"):
                        removals.add((key, cid))
                        continue
                    companies.add(cid)
                    memberships.add((key, cid))
                    for name in company.get("custom_attributes") or {}:
                        attributes.add(("company", name))
    return {
        "contacts": len(contacts), "companies": len(companies), "memberships": len(memberships),
        "removals": len(removals), "events": events, "attributes": len(attributes),
        "total": len(contacts) + len(companies) + len(memberships) + len(removals) + events + len(attributes) + 2,
    }


def high_water_kb(pid):
    """The process's peak resident set so far (VmHWM), 0 once it is gone. The peak only grows, so
    the last reading before the exit is the run's peak, short of at most its last 0.2 s."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--rate-limit", type=int, default=0, help="calls per 10-second window (0: none)")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/debug/intercom-backfill"))
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more options for the run")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="rest-calls-")
    dry = os.path.join(work, "bulk-plan.ndjson")
    subprocess.run(
        [args.binary, "run", "--dry-run", "--api-version", "1.4", "--out", dry, "--state-dir", os.path.join(work, "dry"),
         "--quiet", *args.inputs], check=False)
    floor = floor_calls(dry)

    sandbox_args = [args.binary, "sandbox", "--port", "0", "--token", TOKEN, "--latency-ms", str(args.latency_ms)]
    if args.rate_limit:
        sandbox_args += ["--rate-limit", str(args.rate_limit)]
    sandbox = subprocess.Popen(sandbox_args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = sandbox.stdout.readline().strip().split()[-1]
        report_path = os.path.join(work, "report.json")
        # The sandbox's request count at each 10-second window boundary: the calls of each window.
        marks, done = [], threading.Event()

        def sample():
            while not done.is_set():
                wake = (math.floor(time.time() / 10) + 1) * 10 + 0.02
                if done.wait(max(0, wake - time.time())):
                    break
                with urllib.request.urlopen(url + "/sandbox/stats") as answer:
                    marks.append(json.load(answer)["requests"])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.time()
        tool = subprocess.Popen(
            [args.binary, "run", "--endpoint", url, "--api-version", "2.14", "--state-dir", os.path.join(work, "state"),
             "--no-progress", "--log-level", "error", "--report", report_path, *args.extra, *args.inputs],
            env={**os.environ, "INTERCOM_ACCESS_TOKEN": TOKEN})
        peak_kb = 0
        while tool.poll() is None:
            peak_kb = max(peak_kb, high_water_kb(tool.pid))
            time.sleep(0.2)
        ended = time.time()
        done.set()
        sampler.join()
    finally:
        sandbox.terminate()
        sandbox.wait()

    report = json.load(open(report_path))
    items = report["mapped"]["users"] + report["mapped"]["events"]
    ours, peers = report["requests"], report["peer_calls"]
    print(f"input: {' '.join(args.inputs)}: {items} mapped items ({report['mapped']['users']} users, "
          f"{report['mapped']['events']} events)")
    print(f"calls per mapped item: ours {ours / items:.3f} ({ours}), peers {peers / items:.3f} ({peers}), "
          f"floor {floor['total'] / items:.3f} ({floor['total']})")
    print(f"  ours / peers {ours / peers:.3f}, ours / floor {ours / floor['total']:.3f}; "
          f"unchanged {report['unchanged']}, merged {report['merged']}")
    print(f"  floor: {json.dumps(floor)}")
    print(f"  calls: {json.dumps(report['calls'], sort_keys=True)}")
    seconds = ended - started
    if peak_kb:
        print(f"peak RSS of the run: {peak_kb / 1024:.1f} MB (VmHWM, sampled every 0.2 s)")
    if args.rate_limit:
        windows = math.floor(ended / 10) - math.floor(started / 10) + 1
        share = ours / (args.rate_limit * windows)
        print(f"budget: {ours} calls in {seconds:.1f} s, {windows} windows of {args.rate_limit}: "
              f"{share * 100:.1f}% of the allowed budget (a lower bound), "
              f"{report['rate_limited']} answered 429 ({report['rate_limited'] / max(1, ours) * 100:.2f}%)")
        # The whole windows between the first and the last boundary the run crossed: the first
        # window starts mid-way and in the last the input ran out, so neither says how well the
        # budget is used while there is work.
        full = [b - a for a, b in zip(marks, marks[1:])]
        if full:
            print(f"  whole windows: {full}: {sum(full) / (args.rate_limit * len(full)) * 100:.1f}% of their budget used")
    else:
        print(f"time: {seconds:.1f} s, peak concurrency {report['concurrency_peak']}")


if __name__ == "__main__":
    sys.exit(main())

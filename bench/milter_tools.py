#!/usr/bin/python3
"""Helpers for bench/milter.sh (standard library only, Python 3.9+).

  milter_tools.py smtp-replay --server 127.0.0.1:25 --concurrency N [--messages N]
                  [--warmup N] [--rcpt ADDR] [--from ADDR] [--xclient IP] DIR...
      Replays message files through SMTP like a sending MTA: N concurrent
      sessions, each sending one message after another (RSET in between),
      files taken round-robin from DIR... in sorted order. Prints one JSON
      object: messages/second (completed transactions, whatever the answer),
      latency p50/p99 in ms from MAIL FROM to the answer after the final dot,
      and the count of each final SMTP answer (e.g. "250", "451", "554").
      --xclient IP: each session first sends Postfix's XCLIENT ADDR=IP
      NAME=client.example HELO=client.example, so that Postfix and its
      milters see that client instead of 127.0.0.1.

  milter_tools.py rss PID...
      Prints "RSS_KIB PSS_KIB" summed over the given processes.

  milter_tools.py report RESULTS.jsonl
      Prints the summary tables of bench/milter.sh from its results file.
"""

import json
import os
import smtplib
import statistics
import sys
import threading
import time


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    i = round((len(sorted_values) - 1) * p)
    return sorted_values[min(i, len(sorted_values) - 1)]


def load_messages(dirs):
    files = []
    for d in dirs:
        for name in os.listdir(d):
            path = os.path.join(d, name)
            if os.path.isfile(path):
                files.append(path)
    files.sort()
    out = []
    for path in files:
        with open(path, "rb") as f:
            raw = f.read()
        # An mbox "From " line is not part of the message.
        if raw.startswith(b"From "):
            raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
        out.append(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return out


def smtp_replay(args):
    opts = {"--server": "127.0.0.1:25", "--concurrency": "8", "--messages": None,
            "--warmup": "0", "--rcpt": "user@bench.test", "--from": "sender@example.com",
            "--xclient": None}
    dirs = []
    it = iter(args)
    for a in it:
        if a in opts:
            opts[a] = next(it)
        else:
            dirs.append(a)
    host, port = opts["--server"].rsplit(":", 1)
    concurrency = int(opts["--concurrency"])
    corpus = load_messages(dirs)
    total = int(opts["--messages"]) if opts["--messages"] else len(corpus)
    warmup = int(opts["--warmup"])
    lock = threading.Lock()
    state = {"next": 0, "start": None}
    latencies, answers, errors = [], {}, []

    def answer(code):
        with lock:
            answers[str(code)] = answers.get(str(code), 0) + 1

    def worker():
        s = None
        while True:
            with lock:
                n = state["next"]
                state["next"] += 1
                if n == warmup and state["start"] is None:
                    state["start"] = time.monotonic()
            if n >= warmup + total:
                break
            msg = corpus[n % len(corpus)]
            try:
                if s is None:
                    s = smtplib.SMTP(host, int(port), local_hostname="client.example", timeout=300)
                    s.ehlo("client.example")
                    if opts["--xclient"]:
                        code, text = s.docmd("XCLIENT", f"ADDR={opts['--xclient']} "
                                             "NAME=client.example HELO=client.example")
                        if code != 220:
                            raise smtplib.SMTPResponseException(code, text)
                        s.ehlo("client.example")
                t = time.monotonic()
                code, _ = s.mail(opts["--from"])
                if code == 250:
                    code, _ = s.rcpt(opts["--rcpt"])
                if code not in (250, 251):  # refused at MAIL FROM or RCPT
                    if n >= warmup:
                        latencies.append(time.monotonic() - t)
                        answer(code)
                    s.rset()
                    continue
                code, _ = s.data(msg)
                took = time.monotonic() - t
                if n >= warmup:
                    latencies.append(took)
                    answer(code)
            except smtplib.SMTPDataError as e:  # a 4xx/5xx to DATA or the final dot
                if n >= warmup:
                    latencies.append(time.monotonic() - t)
                    answer(e.smtp_code)
                try:
                    s.rset()
                except Exception:
                    s = None
            except Exception as e:  # connection trouble: count it, reconnect
                with lock:
                    errors.append(repr(e))
                try:
                    s.close()
                except Exception:
                    pass
                s = None
        if s is not None:
            try:
                s.quit()
            except Exception:
                pass

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - (state["start"] or time.monotonic())
    latencies.sort()
    done = len(latencies)
    print(json.dumps({
        "target": opts["--server"], "concurrency": concurrency, "messages": done,
        "seconds": round(elapsed, 3),
        "messages_per_second": round(done / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "max_ms": round(latencies[-1] * 1000, 3) if latencies else 0.0,
        "replies": dict(sorted(answers.items())), "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }))


def rss(pids):
    r = p = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        r += int(line.split()[1])
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        p += int(line.split()[1])
        except FileNotFoundError:
            pass
    print(r, p)


def fmt_rate(x):
    return f"{x:,.0f}"


def report(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    by = {}
    for r in rows:
        if r["phase"] in ("milter", "postfix"):
            by.setdefault((r["phase"], r["server"], r["concurrency"]), []).append(r)

    def med(rs, key):
        return statistics.median(r[key] for r in rs)

    def replies(rs):
        r = rs[-1]
        parts = [f"{k} {v}" for k, v in r["replies"].items()]
        mods = r.get("modifications") or {}
        if mods:
            parts.append("mods: " + ", ".join(f"{k} {v}" for k, v in mods.items()))
        if r.get("errors"):
            parts.append(f"ERRORS {r['errors']}")
        return "; ".join(parts)

    for phase, title in (("milter", "Milter protocol direct (milter_load; no Postfix)"),
                         ("postfix", "End to end through Postfix (SMTP replay of the corpus)")):
        keys = sorted({(s, c) for (ph, s, c) in by if ph == phase}, key=lambda k: (k[1], k[0]))
        if not keys:
            continue
        print(f"\n## {title}")
        print("| server | concurrency | msg/s (median) | p50 ms | p99 ms | runs msg/s | replies (last run) |")
        print("|---|---|---|---|---|---|---|")
        for s, c in keys:
            rs = by[(phase, s, c)]
            print(f"| {s} | {c} | {fmt_rate(med(rs, 'messages_per_second'))} | "
                  f"{med(rs, 'p50_ms'):.2f} | {med(rs, 'p99_ms'):.2f} | "
                  f"{' '.join(fmt_rate(r['messages_per_second']) for r in rs)} | {replies(rs)} |")
        servers = sorted({s for s, _ in keys})
        ref = "rspamd" if "rspamd" in servers else None
        if ref:
            for s in servers:
                if s == ref:
                    continue
                for c in sorted({c for (s2, c) in keys if s2 == s}):
                    if (phase, ref, c) in by:
                        a = med(by[(phase, s, c)], "messages_per_second")
                        b = med(by[(phase, ref, c)], "messages_per_second")
                        print(f"ratio {s}/{ref} at concurrency {c}: {a / b:.1f}x")
    for r in rows:
        if r["phase"] == "rss":
            print(f"\nRSS {r['server']} ({r['when']}): {r['rss_kib'] / 1024:.1f} MiB "
                  f"(PSS {r['pss_kib'] / 1024:.1f} MiB, {r['processes']} processes)")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "smtp-replay":
        smtp_replay(args)
    elif cmd == "rss":
        rss(args)
    elif cmd == "report":
        report(args[0])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

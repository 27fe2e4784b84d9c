#!/usr/bin/env python3
"""Builds bench/report.sh's log: every Postfix line of the test logs,
repeated with queue ids and senders renumbered each round, to >= MB MB.

usage: report_log.py TESTDATA OUT MB
"""
import re, sys
testdata, out, mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
sources = [f"{testdata}/postfix-logs/pflogsumm-go/sample.log",
           f"{testdata}/postfix-logs/pflogsumm-go/rfc3339.log",
           f"{testdata}/postfix-logs/digineo-postfix-exporter/mail.log",
           f"{testdata}/fail2ban-logs/postfix"]
lines = []
for s in sources:
    for l in open(s, encoding="utf-8", errors="replace"):
        if re.match(r"^([A-Z][a-z]{2} [ 0-9]\d |\d{4}-\d\d-\d\dT)", l) and "postfix" in l:
            lines.append(l.rstrip("\n"))
qid = re.compile(r"(\]: )([0-9A-Z]{5,12})(:)")
sender = re.compile(r"from=<([^@>]+)@")
with open(out, "w") as f:
    written, rnd = 0, 0
    while written < mb * 1000000:
        tag = format(rnd, "X")
        chunk = []
        for l in lines:
            l = qid.sub(lambda m: m.group(1) + m.group(2) + tag + m.group(3), l)
            l = sender.sub(lambda m: "from=<" + m.group(1) + str(rnd % 5000) + "@", l)
            chunk.append(l)
        text = "\n".join(chunk) + "\n"
        f.write(text)
        written += len(text)
        rnd += 1

#!/usr/bin/env python3
"""dnsmasq records for corpus-dev's senders (bench/auth.sh and
bench/auth_instructions.sh): for every From domain an SPF record and a
DMARC record (p=none), for every DKIM-Signature d=/s= a key record (a
well-formed RSA key that signed none of the messages), and SPF/DMARC for
the load's envelope sender domain (example.com).

Usage: auth_records.py CORPUS_DIR > records.conf
"""
import email, email.policy, os, re, sys
corpus = sys.argv[1]
froms, keys = set(), set()
for sub in ("ham", "spam"):
    d = os.path.join(corpus, sub)
    for name in os.listdir(d):
        with open(os.path.join(d, name), "rb") as f:
            head = f.read(65536).split(b"\n\n", 1)[0].decode("latin-1")
        m = re.search(r"^From:.*?@([A-Za-z0-9.-]+)", head, re.M | re.I)
        if m:
            froms.add(m.group(1).lower().strip("."))
        for sig in re.findall(r"^DKIM-Signature:(.*(?:\n[ \t].*)*)", head, re.M | re.I):
            tags = dict(t.strip().split("=", 1) for t in sig.replace("\n", " ").split(";") if "=" in t)
            d_, s_ = tags.get("d", "").strip().lower(), tags.get("s", "").strip().lower()
            if d_ and s_ and re.fullmatch(r"[a-z0-9._-]+", d_ + s_):
                keys.add((s_, d_))
ok = lambda n: re.fullmatch(r"[a-z0-9.-]+", n) and len(n) < 200
for d in sorted(filter(ok, froms)):
    print(f'txt-record={d},"v=spf1 ip4:192.0.2.0/24 ~all"')
    print(f'txt-record=_dmarc.{d},"v=DMARC1; p=none"')
# A well-formed RSA key that signed none of these messages.
key = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB"
for s, d in sorted(keys):
    print(f'txt-record={s}._domainkey.{d},"v=DKIM1; k=rsa; p={key}"')
print('txt-record=example.com,"v=spf1 ip4:192.0.2.0/24 -all"')
print('txt-record=_dmarc.example.com,"v=DMARC1; p=none"')

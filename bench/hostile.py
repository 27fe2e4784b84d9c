#!/usr/bin/env python3
"""Writes the hostile messages of issue 11 into a directory, one file each,
for the soak and memory benchmarks (generated, so nothing third-party is
copied). Sizes are scaled by --scale (1.0 = the sizes the issue measured).

  python3 bench/hostile.py OUTDIR [--scale 1.0] [--only NAME,...]
"""
import argparse
import os

def rfc822_chain(scale):
    # 33,000 nested message/rfc822 parts in 949 KB: aborted the process.
    return b"Content-Type:message/rfc822\n\n" * int(33000 * scale) + b"x\n"

def tiny_headers(size):
    # Millions of one-letter header fields: parse memory per field.
    n = size // 5
    return b"".join(b"%s:\n" % (b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"[i % 26 : i % 26 + 1] * 2) for i in range(n)) + b"\nbody\n"

def unique_headers(size):
    # Distinct header names: per-name counters grow with them.
    out, i = [], 0
    total = 0
    while total < size:
        line = b"X-H%d: v\r\n" % i
        out.append(line)
        total += len(line)
        i += 1
    return b"".join(out) + b"\r\nbody\r\n"

def many_parts(n):
    # 500,000 empty parts in 42.8 MB.
    head = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    part = b"--b\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\nx\r\n"
    return head + part * n + b"--b--\r\n"

def nested_multiparts(n):
    # 100,000 nested multiparts in 8.3 MB.
    out = [b"Content-Type: multipart/mixed; boundary=a0\r\n\r\n"]
    for i in range(1, n):
        out.append(b"--a%d\r\nContent-Type: multipart/mixed; charset=us-ascii; boundary=a%d\r\n\r\n" % (i - 1, i))
    out.append(b"--a%d\r\n\r\nx\r\n" % (n - 1))
    return b"".join(out)

def deep_html(n):
    # Unclosed tags and comments nested deep, in one HTML part.
    body = b"<div><b><i><table><tr><td>" * n + b"text" + b"<!--" * 1000
    return b"Content-Type: text/html\r\n\r\n" + body + b"\r\n"

# Postfix passes no header field over header_size_limit (100 KiB by
# default) to a milter, so the one-field shapes stay under 64 KiB: hostile
# by their nesting and count, not by a size Postfix would never send.

def long_received(n):
    # One Received header with deeply nested parenthesised comments.
    return b"Received: from a " + b"(" * n + b"x" + b")" * n + b" by b\r\nSubject: r\r\n\r\nbody\r\n"

def encoded_words(n):
    # Thousands of encoded words in one Subject, nested comments in From.
    return b"Subject: " + b"=?utf-8?b?w6k=?= " * n + b"\r\nFrom: " + b"(c " * (5 * n) + b"a@b\r\n\r\nbody\r\n"

SHAPES = {
    "rfc822-chain-33000": lambda s: rfc822_chain(s),
    "tiny-headers-10MB": lambda s: tiny_headers(int(10_000_000 * s)),
    "tiny-headers-45MB": lambda s: tiny_headers(int(45_000_000 * s)),
    "unique-headers-10MB": lambda s: unique_headers(int(10_000_000 * s)),
    "parts-500k": lambda s: many_parts(int(500_000 * s)),
    "nested-multipart-100k": lambda s: nested_multiparts(int(100_000 * s)),
    "deep-html-100k": lambda s: deep_html(int(100_000 * s)),
    "received-nesting-30k": lambda s: long_received(int(30_000 * s)),
    "encoded-words-3500": lambda s: encoded_words(int(3_500 * s)),
}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    only = set(filter(None, a.only.split(",")))
    for name, make in SHAPES.items():
        if only and name not in only:
            continue
        data = make(a.scale)
        with open(os.path.join(a.outdir, name + ".eml"), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data):,} bytes")

if __name__ == "__main__":
    main()

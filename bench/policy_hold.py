#!/usr/bin/env python3
"""Memory of the policy server under unfinished requests (issue 11, item 4).

  python3 bench/policy_hold.py ADDR CONNECTIONS PID [SECONDS_AFTER_CLOSE] [LINES]

Opens CONNECTIONS connections to the policy server at ADDR (loopback only),
each sending LINES (default 255) lines of 8 KiB of 0xFF bytes without the
empty line that ends a request, holds them 2 s, closes them, waits, and
prints the server's RSS (PID) before, while held and after.
"""
import socket
import sys
import time

addr, n, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
after = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
nlines = int(sys.argv[5]) if len(sys.argv) > 5 else 255
host, port = addr.rsplit(':', 1)
assert host.startswith('127.') or host == '::1', 'loopback targets only'


def rss_mib():
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS'):
                return int(line.split()[1]) // 1024


lines = [b'%03d=' % k + b'\xff' * 8188 + b'\n' for k in range(nlines)]
print(f'before: {rss_mib()} MiB', flush=True)
socks, cut = [], 0
for _ in range(n):
    s = socket.create_connection((host, int(port)))
    socks.append(s)
    try:
        for line in lines:
            s.sendall(line)
    except OSError:
        cut += 1  # the server closed it mid-request
time.sleep(2)
open_now = 0
for s in socks:
    s.setblocking(False)
    try:
        open_now += s.recv(1) != b''
    except BlockingIOError:
        open_now += 1
    except OSError:
        pass
print(f'held {n} connections ({cut} closed by the server while sending, {open_now} still open): {rss_mib()} MiB', flush=True)
for s in socks:
    s.close()
time.sleep(after)
print(f'after they closed: {rss_mib()} MiB', flush=True)

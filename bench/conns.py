#!/usr/bin/env python3
"""The connection layer under many connections: drives a running latchkey.

usage: conns.py BASE_URL PID [--max-connections N] [--header-timeout S] [--idle-timeout S]
                [--only idle,burst,slow,overload]

Scenarios (each one Markdown table row or two):
  idle      IDLE_CONNS (1000) keep-alive connections, one GET /healthz each, held idle HOLD s
            (5), then a second GET on each.
  burst     BURST_CONNS (256) connections released together by a barrier, one GET /healthz
            each with `Connection: close`.
  slow      SLOW_CONNS (64) clients trickling a request head one byte every 100 ms, beside
            `wrk -t2 -c32 -d5s`; given up after header_timeout + 5 s.
  overload  `wrk -t2 -c512 -d10s --timeout 10s --latency` (OVERLOAD_SECONDS changes the 10),
            then a /healthz.

Threads and VmRSS come from /proc/PID/status, polled every 50 ms during a scenario (the peak)
and once more after the scenario has settled (the thread count stopped changing for 1 s).
Prints a Markdown section on stdout and progress on stderr. Exit status: 0; 1 when the
server is not up (dead process or no 200 from /healthz) after a scenario or at the end.
Uses only the standard library (and wrk, from PATH).
"""
import argparse
import errno
import os
import re
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

IDLE_CONNS = int(os.environ.get("IDLE_CONNS", "1000"))
HOLD = float(os.environ.get("HOLD", "5"))
BURST_CONNS = int(os.environ.get("BURST_CONNS", "256"))
SLOW_CONNS = int(os.environ.get("SLOW_CONNS", "64"))
SLOW_WRK = ["-t2", "-c32", "-d5s"]
OVERLOAD_WRK = ["-t2", "-c512", f"-d{os.environ.get('OVERLOAD_SECONDS', '10')}s", "--timeout", "10s"]
OVERLOAD_CONNS = 512


def log(msg):
    print(f">> conns: {msg}", file=sys.stderr, flush=True)


# --- the server process ----------------------------------------------------------------------

def proc_status(pid):
    """(threads, VmRSS kB) of pid, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    threads = rss = 0
    for line in text.splitlines():
        if line.startswith("Threads:"):
            threads = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return threads, rss


def open_files_limit(pid):
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return line.split()[3]
    except OSError:
        pass
    return "?"


class Watcher:
    """Polls threads and VmRSS every 50 ms; remembers the peaks since the last reset."""

    def __init__(self, pid):
        self.pid = pid
        self.lock = threading.Lock()
        self.peak_threads = 0
        self.peak_rss = 0
        self.gone = False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            self.sample()
            time.sleep(0.05)

    def sample(self):
        st = proc_status(self.pid)
        with self.lock:
            if st is None:
                self.gone = True
                return
            self.peak_threads = max(self.peak_threads, st[0])
            self.peak_rss = max(self.peak_rss, st[1])

    def reset(self):
        with self.lock:
            self.peak_threads = 0
            self.peak_rss = 0
        self.sample()

    def peaks(self):
        self.sample()
        with self.lock:
            return self.peak_threads, self.peak_rss

    def stop(self):
        self.done.set()
        self.thread.join()


def settle(pid, timeout=15.0):
    """Waits until the thread count has not changed for 1 s; returns (threads, RSS kB)."""
    deadline = time.monotonic() + timeout
    last = proc_status(pid)
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        st = proc_status(pid)
        if st is None:
            return None
        if last is None or st[0] != last[0]:
            last, since = st, time.monotonic()
        elif time.monotonic() - since >= 1.0:
            return st
    log(f"thread count still changing after {timeout:.0f} s")
    return proc_status(pid)


# --- HTTP on raw sockets ---------------------------------------------------------------------

def request(host, close):
    conn = "close" if close else "keep-alive"
    return (f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nUser-Agent: latchkey-conns\r\n"
            f"Connection: {conn}\r\n\r\n").encode()


def parse_response(buf):
    """(status, length consumed) of the first complete response in buf, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split()[1])
    except (IndexError, ValueError):
        return (-1, len(buf))
    length = 0
    for line in head[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    total = end + 4 + length
    if len(buf) < total:
        return None
    return status, total


def healthz(addr, host, timeout=5.0):
    """The status of one GET /healthz on a new connection, or an error name."""
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            s.sendall(request(host, close=True))
            buf = b""
            while True:
                r = parse_response(buf)
                if r:
                    return r[0]
                chunk = s.recv(4096)
                if not chunk:
                    return "closed"
                buf += chunk
    except OSError as e:
        return type(e).__name__


def error_kind(e):
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(e, OSError) and e.errno in (errno.ECONNRESET, errno.EPIPE):
        return "reset"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    return "error"


class Client:
    """One non-blocking connection running one request at a time."""

    def __init__(self):
        self.sock = None
        self.buf = b""
        self.out = b""
        self.result = None      # 200, another status, "closed", "reset", "timeout", "error"
        self.connected = False
        self.t0 = self.t1 = 0.0


def drive(clients, sel, deadline):
    """Runs the selector until every registered client has a result or the deadline passes."""
    pending = {c for c in clients if c.result is None}
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            for c in pending:
                c.result = "timeout"
                sel.unregister(c.sock)
            return
        for key, events in sel.select(min(left, 0.5)):
            c = key.data
            try:
                if not c.connected:
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    c.connected = True
                if events & selectors.EVENT_WRITE and c.out:
                    n = c.sock.send(c.out)
                    c.out = c.out[n:]
                    if not c.out:
                        sel.modify(c.sock, selectors.EVENT_READ, c)
                    continue
                if events & selectors.EVENT_READ:
                    chunk = c.sock.recv(65536)
                    if not chunk:
                        c.result = "closed" if not c.buf else "error"
                    else:
                        c.buf += chunk
                        r = parse_response(c.buf)
                        if r:
                            c.result = r[0]
                            c.buf = c.buf[r[1]:]
            except BlockingIOError:
                continue
            except OSError as e:
                c.result = error_kind(e)
            if c.result is not None:
                c.t1 = time.monotonic()
                sel.unregister(c.sock)
                pending.discard(c)


def tally(results):
    """(200s, 503s, clean closes, resets, timeouts, other statuses/errors)."""
    ok = sum(1 for r in results if r == 200)
    r503 = sum(1 for r in results if r == 503)
    closed = sum(1 for r in results if r == "closed")
    reset = sum(1 for r in results if r in ("reset", "refused"))
    timeout = sum(1 for r in results if r == "timeout")
    other = len(results) - ok - r503 - closed - reset - timeout
    return ok, r503, closed, reset, timeout, other


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))]


def fmt_ms(v):
    return "?" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.0f}")


def mb(kb):
    return f"{kb / 1024:.1f}" if kb else "?"


# --- the table -------------------------------------------------------------------------------

HEADER = ("| scenario | conns requested | established | answered 200 | refused: 503 / closed "
          "| errors: reset / timeout | threads peak | RSS peak MB | threads after | RSS after MB "
          "| notes |\n"
          "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --- |")


def row(name, requested, established, ok, refused, errors, peak, after, notes):
    cells = [name, str(requested), str(established), str(ok), refused, errors,
             str(peak[0]) if peak else "—", mb(peak[1]) if peak else "—",
             str(after[0]) if after else "—", mb(after[1]) if after else "—", notes]
    return "| " + " | ".join(cells) + " |"


# --- scenarios -------------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        u = urlsplit(args.base)
        self.base = args.base.rstrip("/")
        self.addr = (u.hostname, u.port or 80)
        self.host = u.netloc
        self.pid = args.pid
        self.args = args
        self.watch = Watcher(self.pid)
        self.rows = []
        self.notes = []

    def alive(self):
        return proc_status(self.pid) is not None

    def after(self):
        return settle(self.pid)

    def idle(self):
        n = IDLE_CONNS
        cap = self.args.max_connections
        log(f"idle: opening {n} keep-alive connections (http.max_connections {cap})")
        self.watch.reset()
        sel = selectors.DefaultSelector()
        clients = []
        t0 = time.monotonic()
        for _ in range(n):
            c = Client()
            c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.sock.setblocking(False)
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.out = request(self.host, close=False)
            c.t0 = time.monotonic()
            rc = c.sock.connect_ex(self.addr)
            if rc not in (0, errno.EINPROGRESS):
                c.result = error_kind(OSError(rc, os.strerror(rc)))
                c.sock.close()
                continue
            sel.register(c.sock, selectors.EVENT_WRITE, c)
            clients.append(c)
        drive(clients, sel, time.monotonic() + 30)
        first_wall = time.monotonic() - t0
        established = sum(1 for c in clients if c.connected)
        first = [c.result for c in clients] + ["reset"] * (n - len(clients))
        ok1, r503, closed1, reset1, to1, other1 = tally(first)
        lat = [(c.t1 - c.t0) * 1000 for c in clients if c.result == 200]
        log(f"idle: first GET: {ok1} × 200, {r503} × 503, {closed1} closed, {reset1} reset, "
            f"{to1} timeout, {other1} other in {first_wall:.2f} s; holding {HOLD:.0f} s")
        # Connections the server refused or failed are closed now; the rest are held idle.
        for c in clients:
            if c.result != 200:
                c.sock.close()
        held = [c for c in clients if c.result == 200]
        time.sleep(HOLD)
        held_st = proc_status(self.pid)
        peak1 = self.watch.peaks()
        expect = min(n, cap)
        note1 = (f"all answered in {first_wall:.2f} s (p50 {fmt_ms(pct(lat, 50))} ms, p99 "
                 f"{fmt_ms(pct(lat, 99))} ms); while {len(held)} held idle {HOLD:.0f} s: "
                 f"{held_st[0] if held_st else '?'} threads, "
                 f"{mb(held_st[1]) if held_st else '?'} MB; cap {cap}, so {expect} should get "
                 f"200 and {n - expect} a 503")
        if other1:
            note1 += f"; {other1} other answers/errors"
        self.rows.append(row(f"1a idle: {n} keep-alive, first GET", n, established, ok1,
                             f"{r503} / {closed1}", f"{reset1} / {to1}", peak1, None, note1))

        # Second request on every held connection; one the server closed while idle reads EOF.
        log(f"idle: second GET on the {len(held)} held connections")
        self.watch.reset()
        closed_idle = 0
        probe = selectors.DefaultSelector()
        for c in held:
            probe.register(c.sock, selectors.EVENT_READ, c)
        for key, _ in probe.select(0):
            try:
                if key.data.sock.recv(1, socket.MSG_PEEK) == b"":
                    key.data.result = "closed-idle"
                    closed_idle += 1
            except OSError as e:
                key.data.result = error_kind(e)
        probe.close()
        second = []
        t1 = time.monotonic()
        for c in held:
            if c.result != 200:
                continue
            c.result = None
            c.buf = b""
            c.out = request(self.host, close=False)
            c.t0 = time.monotonic()
            sel.register(c.sock, selectors.EVENT_WRITE, c)
            second.append(c)
        drive(second, sel, time.monotonic() + 30)
        second_wall = time.monotonic() - t1
        ok2, r503b, closed2, reset2, to2, other2 = tally([c.result for c in second])
        asked = set(second)
        lost_idle = sum(1 for c in held if c not in asked and c.result != "closed-idle")
        peak2 = self.watch.peaks()
        for c in clients:
            c.sock.close()
        sel.close()
        after = self.after()
        log(f"idle: second GET: {ok2} × 200, {closed_idle} closed while idle, {closed2} closed, "
            f"{reset2 + lost_idle} reset, {to2} timeout in {second_wall:.2f} s")
        note2 = (f"{closed_idle} of {len(held)} closed by the server while idle (http.idle_timeout "
                 f"{self.args.idle_timeout} s); answered in {second_wall:.2f} s; after: all "
                 f"closed by the client")
        if other2:
            note2 += f"; {other2} other answers/errors"
        self.rows.append(row(f"1b idle: second GET after {HOLD:.0f} s", len(held),
                             len(held), ok2, f"{r503b} / {closed2 + closed_idle}",
                             f"{reset2 + lost_idle} / {to2}", peak2, after, note2))

    def burst(self):
        n = BURST_CONNS
        log(f"burst: {n} connections released together, Connection: close")
        self.watch.reset()
        barrier = threading.Barrier(n + 1)
        results = [None] * n
        lat = [None] * n
        connected = [False] * n
        done_at = [0.0] * n
        req = request(self.host, close=True)

        def one(i):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(10)
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                s.close()
                results[i] = "error"
                return
            t = time.monotonic()
            try:
                s.connect(self.addr)
                connected[i] = True
                s.sendall(req)
                buf = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        r = parse_response(buf)
                        results[i] = r[0] if r else ("closed" if not buf else "error")
                        break
                    buf += chunk
                    r = parse_response(buf)
                    if r:
                        results[i] = r[0]
                        break
            except OSError as e:
                results[i] = error_kind(e)
            finally:
                done_at[i] = time.monotonic()
                lat[i] = (done_at[i] - t) * 1000
                s.close()

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.monotonic()
        for t in threads:
            t.join(30)
        wall = max(done_at) - t0 if all(done_at) else float("nan")
        peak = self.watch.peaks()
        after = self.after()
        ok, r503, closed, reset, to, other = tally(results)
        lats = [v for v in lat if v is not None]
        log(f"burst: {ok} × 200 in {wall:.3f} s")
        note = (f"all done {wall * 1000:.0f} ms after the release; per connection p50 "
                f"{fmt_ms(pct(lats, 50))} ms, p99 {fmt_ms(pct(lats, 99))} ms, max "
                f"{fmt_ms(max(lats) if lats else None)} ms")
        if other:
            note += f"; {other} other answers/errors"
        self.rows.append(row(f"2 burst: {n} at once, Connection: close", n, sum(connected), ok,
                             f"{r503} / {closed}", f"{reset} / {to}", peak, after, note))

    def slow(self):
        n = SLOW_CONNS
        ht = self.args.header_timeout
        give_up = ht + 5
        log(f"slow: {n} clients trickling a head 1 byte/100 ms beside wrk {' '.join(SLOW_WRK)}; "
            f"header timeout {ht} s, giving up after {give_up} s")
        self.watch.reset()
        # A head that never ends: the last header value grows one byte per tick.
        prefix = f"GET /healthz HTTP/1.1\r\nHost: {self.host}\r\nX-Slow: ".encode()
        socks = []
        state = {}
        t_start = time.monotonic()
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(5)
            try:
                s.connect(self.addr)
            except OSError as e:
                state[i] = {"result": error_kind(e), "connected": False}
                s.close()
                continue
            s.setblocking(False)
            socks.append((i, s))
            state[i] = {"result": None, "connected": True, "sent": 0, "buf": b"",
                        "first": None, "closed_at": None, "status": None}
        wrk_out = {}

        def run_wrk():
            time.sleep(1.0)   # the slow clients are already trickling
            wrk_out["text"] = run(["wrk", *SLOW_WRK, "--latency", f"{self.base}/healthz"])

        wt = threading.Thread(target=run_wrk, daemon=True)
        wt.start()
        deadline = t_start + give_up
        live = dict(socks)
        while live and time.monotonic() < deadline:
            tick = time.monotonic()
            for i, s in list(live.items()):
                st = state[i]
                # Read first: an answer (408) or a close ends this client.
                try:
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            st["closed_at"] = time.monotonic()
                            r = parse_response(st["buf"])
                            st["status"] = r[0] if r else None
                            st["result"] = st["status"] if r else ("closed" if not st["buf"]
                                                                  else "error")
                            break
                        st["buf"] += chunk
                except BlockingIOError:
                    pass
                except OSError as e:
                    st["closed_at"] = time.monotonic()
                    r = parse_response(st["buf"])
                    st["status"] = r[0] if r else None
                    st["result"] = st["status"] if r else error_kind(e)
                if st["result"] is not None:
                    del live[i]
                    s.close()
                    continue
                if st["buf"]:
                    continue   # an answer is arriving: stop sending, wait for the close
                b = prefix[st["sent"]:st["sent"] + 1] or b"a"
                try:
                    s.send(b)
                    if st["first"] is None:
                        st["first"] = time.monotonic()
                    st["sent"] += 1
                except BlockingIOError:
                    pass
                except OSError as e:
                    st["closed_at"] = time.monotonic()
                    st["result"] = error_kind(e)
                    del live[i]
                    s.close()
            time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
        for i, s in live.items():
            state[i]["result"] = "timeout"   # still open when we gave up
            s.close()
        wt.join(30)
        peak = self.watch.peaks()
        after = self.after()
        results = [st["result"] for st in state.values()]
        ok, r408 = sum(1 for r in results if r == 200), sum(1 for r in results if r == 408)
        closed = sum(1 for r in results if r == "closed")
        reset = sum(1 for r in results if r in ("reset", "refused", "error"))
        to = sum(1 for r in results if r == "timeout")
        other = [r for r in results if isinstance(r, int) and r not in (200, 408)]
        ttc = [st["closed_at"] - st["first"] for st in state.values()
               if st.get("closed_at") and st.get("first")]
        sent = [st.get("sent", 0) for st in state.values()]
        log(f"slow: {r408} × 408, {closed} closed, {reset} reset, {to} still open")
        note = (f"time to close from the first byte: min {min(ttc):.2f} s, p50 "
                f"{statistics.median(ttc):.2f} s, max {max(ttc):.2f} s (header timeout {ht} s); "
                f"{min(sent)}–{max(sent)} bytes sent each" if ttc else "none closed")
        if other:
            note += f"; other answers: {sorted(set(other))}"
        self.rows.append(row(f"3a slow clients: {n} trickling a head", n,
                             sum(1 for st in state.values() if st["connected"]), ok,
                             f"{r408} × 408 / {closed}", f"{reset} / {to}", peak, after, note))
        w = parse_wrk(wrk_out.get("text", ""))
        self.rows.append(self.wrk_row("3b fast clients alongside: wrk " + " ".join(SLOW_WRK),
                                      32, w, None, None, "; threads and RSS: row 3a"))

    def overload(self):
        log(f"overload: wrk {' '.join(OVERLOAD_WRK)} --latency")
        self.watch.reset()
        text = run(["wrk", *OVERLOAD_WRK, "--latency", f"{self.base}/healthz"])
        peak = self.watch.peaks()
        after = self.after()
        w = parse_wrk(text)
        h = healthz(self.addr, self.host)
        log(f"overload: {w['rps']:.0f} req/s, p99 {fmt_ms(w['p99'])} ms; /healthz after: {h}")
        self.rows.append(self.wrk_row(f"4 overload: wrk {' '.join(OVERLOAD_WRK)}",
                                      OVERLOAD_CONNS, w, peak, after,
                                      f"; GET /healthz afterwards: {h}"))

    def wrk_row(self, name, conns, w, peak, after, extra=""):
        if not w["ok"]:
            return row(name, conns, "?", "?", "?", "?", peak, after, "wrk failed: " + w["raw"])
        se = w["sockerr"]
        note = (f"{w['rps']:.0f} req/s, p50 {fmt_ms(w['p50'])} ms, p99 {fmt_ms(w['p99'])} ms, "
                f"max {fmt_ms(w['max'])} ms; wrk socket errors: connect {se[0]}, read {se[1]}, "
                f"write {se[2]}, timeout {se[3]}" + extra)
        return row(name, conns, max(0, conns - se[0]), w["requests"] - w["non2xx"],
                   f"{w['non2xx']} non-2xx / —", f"{se[1] + se[2] + se[0]} / {se[3]}",
                   peak, after, note)


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.stdout


def parse_wrk(text):
    def to_ms(v):
        m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]

    out = {"ok": "Requests/sec" in text, "raw": " ".join(text.split())[:200], "requests": 0,
           "rps": 0.0, "p50": None, "p99": None, "max": None, "non2xx": 0,
           "sockerr": (0, 0, 0, 0)}
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    for p, key in (("50", "p50"), ("99", "p99")):
        m = re.search(r"^\s+%s(?:\.0+)?%%\s+([\d.]+(?:us|ms|s|m))" % p, text, re.M)
        if m:
            out[key] = to_ms(m.group(1))
    m = re.search(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+(?:us|ms|s|m))", text, re.M)
    if m:
        out["max"] = to_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["sockerr"] = tuple(int(x) for x in m.groups())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base")
    ap.add_argument("pid", type=int)
    ap.add_argument("--max-connections", type=int, default=1024)
    ap.add_argument("--header-timeout", type=int, default=10)
    ap.add_argument("--idle-timeout", type=int, default=60)
    ap.add_argument("--only", default="idle,burst,slow,overload")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        log("wrk not found on PATH")
        return 1
    b = Bench(args)
    st = proc_status(args.pid)
    if st is None:
        log(f"no process {args.pid}")
        return 1
    first = healthz(b.addr, b.host)
    if first != 200:
        log(f"the server does not answer GET /healthz with 200 (got {first})")
        return 1
    down = None
    for name in args.only.split(","):
        getattr(b, name)()
        if not b.alive():
            down = f"the server process {args.pid} is gone after the {name} scenario"
            break
        h = healthz(b.addr, b.host)
        if h != 200:
            down = f"GET /healthz answered {h} after the {name} scenario"
            break
    b.watch.stop()

    print("### Connection layer (bench/conns.sh)")
    print()
    print(f"Against pid {args.pid} at {b.base}: `http.max_connections` {args.max_connections}, "
          f"`http.header_timeout` {args.header_timeout} s, `http.idle_timeout` "
          f"{args.idle_timeout} s; the server's open-file limit {open_files_limit(args.pid)}; "
          f"before the first scenario {st[0]} threads, {mb(st[1])} MB RSS.")
    print()
    print(HEADER)
    for r in b.rows:
        print(r)
    print()
    print("- threads/RSS peak: the maximum of /proc/PID/status `Threads` and `VmRSS`, polled "
          "every 50 ms during the scenario; after: once the thread count has not changed for "
          "1 s after the scenario's connections were closed.")
    print("- refused: an HTTP 503 (408 for the slow clients: the header timeout), or a clean "
          "close with no answer; errors: a connection reset (or refused connect), or no answer "
          "before the scenario's deadline. For the wrk rows, wrk cannot tell a clean close from "
          "a reset: its read/write/connect errors are all counted as resets, and established "
          "is the connections minus wrk's connect errors.")
    if down:
        print()
        print(f"**SERVER DOWN: {down}.**")
        log(down)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

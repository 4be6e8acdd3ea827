#!/usr/bin/env python3
"""A lockout attempt: connections from one loopback source address that never register, reopened as soon as the
server closes them (at most REOPEN per 20 ms pass), for SECONDS. Kinds: idle (send nothing), legal (half of a
MyCredentials of a legal size), huge (a frame header announcing 1 MiB and 64 KiB of it). Prints how many it opened.

    flood.py PORT SOURCE SECONDS IDLE LEGAL HUGE [REOPEN]
"""
import socket
import struct
import sys
import time


def opening(kind):
    if kind == "idle":
        return b""
    if kind == "huge":
        return struct.pack(">IHH", 14 + (1 << 20), 4, 0) + bytes(65536)
    body = bytes([1, 0, 1]) + b"x" + bytes([6]) + struct.pack(">H", 4000) + b"t" * 4000
    frame = struct.pack(">IHHBBII", 14 + len(body), 4, 0, 0, 1, 0, 0) + body
    return frame[: len(frame) // 2]


def connect(port, source, kind):
    s = socket.socket()
    s.setblocking(False)
    s.bind((source, 0))
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    data = opening(kind)
    if data:
        try:
            s.send(data)
        except OSError:
            pass
    return s


def main():
    port, source, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    counts = {"idle": int(sys.argv[4]), "legal": int(sys.argv[5]), "huge": int(sys.argv[6])}
    reopen = int(sys.argv[7]) if len(sys.argv) > 7 else 100
    slots = [[kind, connect(port, source, kind)] for kind, n in counts.items() for _ in range(n)]
    opened = len(slots)
    end = time.time() + seconds
    while time.time() < end:
        budget = reopen
        for slot in slots:
            try:
                if slot[1].recv(4096) != b"":
                    continue
            except BlockingIOError:
                continue
            except OSError:
                pass
            if budget == 0:
                continue
            budget -= 1
            slot[1].close()
            slot[1] = connect(port, source, slot[0])
            opened += 1
        time.sleep(0.02)
    print(opened, flush=True)


main()

#!/usr/bin/env python3
"""Opens COUNT idle connections to a hub (ours: registered peers that did not ask for the roster or updates; mqtt: MQTT
3.1.1 clients), prints "ready N" once all are connected, holds them until stdin closes, then prints how many roster
packets (ClientData) and how many other packets (heartbeat pings) the idle peers were sent after registering.

    idle.py ours|mqtt HOST PORT COUNT
"""
import asyncio
import struct
import sys

HEADER = struct.Struct(">IHHBBII")  # length (of what follows it), type, dataType, maskTo, level, idTo, idFrom


def tlv(tag, value):
    return struct.pack(">BH", tag, len(value)) + value


def credentials(name):
    payload = (tlv(1, name.encode()) + tlv(2, b"bench") + tlv(3, b"bench") + tlv(4, b"client")
               + tlv(5, b"0.1.0") + tlv(7, struct.pack(">I", 0)))
    return HEADER.pack(HEADER.size - 4 + len(payload), 4, 0, 0, 1, 0, 0) + payload


async def frame(reader):
    head = await reader.readexactly(HEADER.size)
    length, kind = HEADER.unpack(head)[:2]
    return kind, await reader.readexactly(length - (HEADER.size - 4))


class Totals:
    roster = 0
    other = 0
    registered = 0


async def ours(host, port, index, hold, totals, gate):
    async with gate:  # a bounded number of handshakes at once, so the listen backlog is not the bottleneck
        reader, writer = await asyncio.open_connection(host, port)
        kind, _ = await frame(reader)
        assert kind == 3, f"expected RequestCredentials, got {kind}"
        writer.write(credentials(f"idle-{index}"))
        kind, payload = await frame(reader)
        assert kind == 5, f"expected Registered, got {kind}: {payload!r}"
        totals.registered += 1

    async def count():
        try:
            while True:
                kind, payload = await frame(reader)
                totals.roster += kind == 7
                totals.other += kind != 7
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    counter = asyncio.ensure_future(count())
    await hold.wait()
    counter.cancel()
    writer.close()


async def mqtt(host, port, index, hold, totals, gate):
    async with gate:
        reader, writer = await asyncio.open_connection(host, port)
        client = f"idle-{index}".encode()
        body = b"\x00\x04MQTT\x04\x02\x02\x58" + struct.pack(">H", len(client)) + client
        writer.write(bytes([0x10, len(body)]) + body)
        ack = await reader.readexactly(4)
        assert ack == b"\x20\x02\x00\x00", f"CONNACK {ack!r}"
        totals.registered += 1
    await hold.wait()
    writer.close()


async def main():
    kind, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    hold = asyncio.Event()
    gate = asyncio.Semaphore(256)
    totals = Totals()
    connect = ours if kind == "ours" else mqtt
    tasks = [asyncio.ensure_future(connect(host, port, i, hold, totals, gate)) for i in range(count)]
    for _ in range(1200):  # at most 60 s
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise failed[0].exception()
        if totals.registered == count:
            break
        await asyncio.sleep(0.05)
    else:
        sys.exit(f"only {totals.registered} of {count} connected within 60 s")
    await asyncio.sleep(0.5)  # let join announcements (if any) arrive
    print(f"ready {count}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    hold.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(f"roster {totals.roster} other {totals.other}", flush=True)


asyncio.run(main())

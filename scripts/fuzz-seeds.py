#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (Tests/Fuzz/seeds/TARGET/) from the golden vectors in docs/PROTOCOL.md,
plus hand-made event sequences for the message assembler and the hub core. Input formats: Sources/TCPIPFuzz."""
import os, re, struct, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
out = os.path.join(root, "Tests", "Fuzz", "seeds")

golden = {}
for line in open(os.path.join(root, "docs", "PROTOCOL.md"), encoding="utf-8"):
    m = re.match(r"golden (\w+): (.*)$", line.strip())
    if m:
        golden[m.group(1)] = bytes.fromhex(re.sub(r"[^0-9a-fA-F]", "", m.group(2)))

def frame(type_, payload=b"", data_type=0, mask=0, id_to=0):
    return struct.pack(">IHHBBII", 14 + len(payload), type_, data_type, mask, 1, id_to, 0) + payload

def tlv(tag, value):
    return struct.pack(">BH", tag, len(value)) + value

def write(target, name, data):
    directory = os.path.join(out, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)

for name, data in golden.items():
    write("frames", name, bytes([7]) + data)
    write("payloads", name, bytes([0]) + data[18:])
write("frames", "all-golden-vectors", bytes([63]) + b"".join(golden.values()))

def part(message_id, flags, sender, data):
    return bytes([flags | (message_id << 5) & 0xE0, sender, len(data)]) + data
write("assembler", "whole-and-split", part(1, 3, 0, b"hello") + part(2, 1, 1, b"par") + part(2, 2, 1, b"ts"))
write("assembler", "abort-and-limit", part(3, 1, 2, b"x" * 39) + part(3, 8, 2, b"") + part(4, 1, 0, b"y" * 39)
      + part(4, 0, 0, b"y" * 39) + part(4, 2, 0, b"z"))

def connect(c): return bytes([0, c])
def send(c, data):
    assert len(data) <= 255
    return bytes([2, c, len(data)]) + data
def tick(c, seconds): return bytes([4, seconds])
credentials = lambda name, flags: frame(4, tlv(1, name) + tlv(4, b"receiver") + tlv(7, struct.pack(">I", flags)))
hub = (connect(0) + send(0, credentials(b"alice", 3)) + connect(1) + send(1, credentials(b"bob", 0))
       + connect(2) + send(2, credentials(b"bob", 4))
       + send(0, frame(11, struct.pack(">I", 1) + b"hi", data_type=3, mask=1, id_to=2))
       + send(0, frame(67, tlv(1, struct.pack(">I", 2)) + tlv(1, struct.pack(">I", 3))))
       + send(0, frame(13, tlv(1, struct.pack(">I", 1)) + tlv(2, b"a.txt"), mask=3))
       + send(1, frame(65, tlv(1, struct.pack(">I", 7)) + tlv(2, b"alice")))
       + send(1, frame(1, tlv(1, struct.pack(">I", 1)) + tlv(2, struct.pack(">Q", 5))))
       + send(1, frame(9, tlv(1, b"robert")))
       + send(2, frame(7, tlv(1, struct.pack(">I", 9)), data_type=2, mask=2))
       + bytes([5, 1]) + tick(0, 60) + send(1, frame(10)) + bytes([1, 0]))
write("hub", "register-route-leave", hub)

# The TLS hub with authorized peers (hubkeys): an op byte with the high bit proves key (byte >> 4) % 3 on a connection.
def prove(c, key): return bytes([0x80 | (key << 4), c])
def creds(name, role=b"client", token=None, flags=0):
    return frame(4, tlv(1, name) + tlv(4, role) + (tlv(6, token) if token else b"") + tlv(7, struct.pack(">I", flags)))
hubkeys = (connect(0) + prove(0, 0) + send(0, creds(b"alice"))
           + connect(1) + prove(1, 1) + send(1, creds(b"bob", b"receiver"))
           + connect(2) + prove(2, 2) + send(2, creds(b"carol", token=b"t"))
           + connect(3) + send(3, creds(b"dave"))
           + send(0, frame(9, tlv(1, b"bob"), mask=0)) + send(0, frame(9, tlv(4, b"receiver"), mask=0))
           + connect(3) + prove(3, 0) + send(3, creds(b"root@box", flags=4)))
write("hubkeys", "prove-register-enrol-steal", hubkeys)
# The receiver's transfer machine (Sources/TCPIPFuzz/ReceiverFuzzTarget.swift): op, who (sender = who % 3, transfer =
# (who >> 2) % 4), then the op's bytes.
def start(who, name, chunk, size=None, compression=0, digest=0):
    return bytes([0, who, name | (chunk << 4) | (digest << 6),
                  (0 if size is None else 1 | (size // 4) << 1) | compression << 6])
def chunk(who, data, compressed=False):
    return bytes([2 if compressed else 1, who, len(data) | (0x80 if compressed else 0)]) + data
def end(who): return bytes([3, who])
receiver = (start(0, 0, 1) + chunk(0, b"hello") + end(0)
            + start(4, 1, 2, size=20, digest=2) + chunk(4, b"hel") + chunk(4, b"lo") + end(4)
            + start(1, 7, 2, compression=1) + chunk(1, b"a" * 40, compressed=True) + end(1)
            + start(5, 2, 1) + start(8, 1, 1) + chunk(8, b"x" * 30) + bytes([4, 8, 0x3c])
            + start(12, 0, 1) + chunk(12, b"y") + bytes([6, 12]) + bytes([7, 0]) + start(16, 0, 1) + bytes([8, 0]))
write("receiver", "store-refuse-leave", receiver)

# A receiver's direct listener (Sources/TCPIPFuzz/DirectFuzzTarget.swift): one connection's bytes, split in two reads
# where the first byte says (times 4). The receiver is id 1 and expects peer 2 with the ticket 07 × 32.
def hello(ticket=bytes([7] * 32), sender=2, receiver=1):
    return frame(74, tlv(1, ticket) + tlv(2, struct.pack(">I", sender)) + tlv(3, struct.pack(">I", receiver)), mask=1,
                 id_to=1)
file_packets = (frame(13, tlv(1, struct.pack(">I", 1)) + tlv(2, b"a.txt") + tlv(3, struct.pack(">Q", 5)), mask=3)
                + frame(14, struct.pack(">IIB", 1, 5, 0) + b"hello", mask=3)
                + frame(15, tlv(1, struct.pack(">I", 1)) + tlv(2, struct.pack(">Q", 5)), mask=3)
                + frame(1, tlv(1, struct.pack(">I", 1)) + tlv(2, struct.pack(">Q", 1)), mask=1, id_to=1))
write("direct", "hello-then-a-file", hello() + file_packets)
write("direct", "wrong-ticket", hello(bytes([8] * 32)) + file_packets)
write("direct", "ticket-of-another-sender", hello(sender=3) + file_packets)
write("direct", "message-before-hello", frame(11, bytes(20), mask=1, id_to=1) + hello())
write("direct", "hello-then-a-message", hello() + frame(11, bytes(20), mask=1, id_to=1))
write("direct", "oversized-first-frame", struct.pack(">I", 100000) + bytes(40))

# A classic client's translator (Sources/TCPIPFuzz/ClassicFuzzTarget.swift): segments of tag u8, length u16 LE, bytes;
# an even tag carries the classic client's bytes (1024-byte packets, little-endian), an odd one frames of ours for it.
# The client is id 1 and registered; peer 3 is someone else.
def segment(tag, data): return struct.pack("<BH", tag, len(data)) + data
def classic(type_, fields):
    packet = bytearray(1024)
    struct.pack_into("<H", packet, 0, type_)
    for offset, value in fields:
        packet[offset:offset + len(value)] = value
    return bytes(packet)
def u16(v): return struct.pack("<H", v)
def u32(v): return struct.pack("<I", v)
def our(type_, payload=b"", data_type=0, id_from=3):
    return struct.pack(">IHHBBII", 14 + len(payload), type_, data_type, 1, 1, 1, id_from) + payload
message = b"".join(segment(0, classic(11, [(4, u16(sub)), (8, u32(3)), (18, u32(len(text))), (274, text)]))
                   for sub, text in [(0, b"x" * 300), (1, b"y" * 10), (2, b"y" * 10)])
upload = (segment(0, classic(13, [(2, u16(3)), (6, u16(9)), (8, u32(1000)), (12, b"a.txt"), (110, b"z" * 914)]))
          + segment(0, classic(14, [(2, u16(3)), (6, u16(9)), (8, u16(86)), (14, b"w" * 86)]))
          + segment(0, classic(15, [(2, u16(3)), (6, u16(9)), (8, u32(1000))])))
download = (segment(1, our(13, tlv(1, u32(4)[::-1]) + tlv(2, b"b.txt") + tlv(3, struct.pack(">Q", 2000))
                             + tlv(4, struct.pack(">I", 65536))))
            + segment(1, our(14, struct.pack(">II", 4, 2000) + b"q" * 2000))
            + segment(1, our(15, tlv(1, struct.pack(">I", 4)) + tlv(2, struct.pack(">Q", 2000)) + tlv(3, bytes(32)))))
talk = (segment(1, our(11, struct.pack(">I", 5) + "héllo → 1252".encode(), data_type=3))
        + segment(0, classic(12, [(12, u32(1))]))
        + segment(1, our(1, tlv(1, struct.pack(">I", 1)) + tlv(2, struct.pack(">Q", 1)), id_from=0))
        + segment(0, classic(2, [])) + segment(0, classic(10, [])))
write("classic", "message-upload-download-talk", message + upload + download + talk)
write("classic", "chunk-past-1010", upload[:1027] + segment(0, classic(14, [(2, u16(3)), (6, u16(9)), (8, u16(1011))])))
# Sealed data (Sources/TCPIPFuzz/SealedFuzzTarget.swift): the first byte picks the documented transfer with edits
# (what, offset, xor triples), a header of the input's own, the documented message with edits, or a container.
write("sealed", "transfer-intact", bytes([0]))
write("sealed", "transfer-chunk-flipped", bytes([0, 1, 3, 0x40]))
write("sealed", "transfer-swapped", bytes([0, 4, 0, 0]))
write("sealed", "transfer-last-dropped", bytes([0, 5, 0, 0]))
write("sealed", "transfer-end-flipped", bytes([0, 3, 9, 1]))
write("sealed", "header-garbage", bytes([1]) + tlv(1, bytes(145)) + tlv(2, bytes(40)))
write("sealed", "message-intact", bytes([2]))
write("sealed", "message-flipped", bytes([2, 70, 1]))
write("sealed", "container-garbage", bytes([3]) + b"TCPSEAL1" + struct.pack(">I", 3) + b"abc" + bytes([0]) + struct.pack(">I", 4))
print(f"seeds written to {os.path.relpath(out, root)}", file=sys.stderr)

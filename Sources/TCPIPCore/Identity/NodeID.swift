import Crypto

/// A node's identity: the SHA-256 of its public key (the DER SubjectPublicKeyInfo of its certificate), written as
/// 52 base32 letters and digits in groups of four (`ABCD-EFGH-…`), which people can compare and paste. Any form with
/// or without dashes, in either case, parses.
public struct NodeID: Hashable, Sendable, CustomStringConvertible, Comparable {
    public static let byteCount = 32
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = bytes
    }

    /// The ID of the key whose SubjectPublicKeyInfo (DER) is `spki`.
    public init(spki: [UInt8]) { bytes = Array(SHA256.hash(data: spki)) }

    public init?(_ text: String) {
        var bits: UInt32 = 0
        var count = 0
        var bytes: [UInt8] = []
        for character in text.uppercased().unicodeScalars where character != "-" && character != " " {
            guard let value = Self.alphabet.firstIndex(of: UInt8(truncatingIfNeeded: character.value)),
                character.isASCII
            else { return nil }
            bits = bits << 5 | UInt32(value)
            count += 5
            if count >= 8 {
                count -= 8
                bytes.append(UInt8(truncatingIfNeeded: bits >> UInt32(count)))
            }
        }
        // 32 bytes are 256 bits: 52 letters carry 260, the last 4 must be zero.
        guard bytes.count == Self.byteCount, count == 4, bits & 0xF == 0 else { return nil }
        self.bytes = bytes
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    /// Base32 (RFC 4648, no padding) in groups of four letters.
    public var description: String {
        // Bytes first, one String at the end: `listen` prints a sender's ID with every message.
        var out: [UInt8] = []
        out.reserveCapacity(64)
        var letters = 0
        func append(_ letter: UInt8) {
            if letters > 0 && letters % 4 == 0 { out.append(UInt8(ascii: "-")) }
            out.append(letter)
            letters += 1
        }
        var bits: UInt32 = 0
        var count = 0
        for byte in bytes {
            bits = bits << 8 | UInt32(byte)
            count += 8
            while count >= 5 {
                count -= 5
                append(Self.alphabet[Int((bits >> UInt32(count)) & 31)])
            }
        }
        if count > 0 { append(Self.alphabet[Int((bits << UInt32(5 - count)) & 31)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The first group, for log lines where the whole ID would be noise.
    public var short: String { String(description.prefix(4)) }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.bytes.lexicographicallyPrecedes(rhs.bytes) }
}

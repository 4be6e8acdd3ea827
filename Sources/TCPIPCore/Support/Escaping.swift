/// Makes text from the wire safe for a terminal or a log line: control characters (C0, DEL, C1) and backslashes are
/// written as escapes, so a peer name cannot move the cursor, clear the screen or forge a log line.
public func escapedForLog(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for scalar in text.unicodeScalars {
        switch scalar.value {
        case 0x5C: out += "\\\\"
        case 0x0A: out += "\\n"
        case 0x0D: out += "\\r"
        case 0x09: out += "\\t"
        case 0x00..<0x20, 0x7F..<0xA0, 0x2028, 0x2029:
            let hex = String(scalar.value, radix: 16)
            out += "\\u{" + hex + "}"
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out
}

extension String {
    /// At most 64 characters of text from the wire, for a reason or a log line (`…` marks the cut).
    package var clipped: String { count <= 64 ? self : String(prefix(64)) + "…" }
}

extension [UInt8] {
    /// The bytes of hexadecimal text (two digits a byte, either case); nil when it is not that.
    package init?(hex text: String) {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        func value(_ digit: UInt8) -> UInt8? {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        self = bytes
    }
}

extension Sequence<UInt8> {
    /// Lower-case hexadecimal, two digits a byte (a SHA-256 for every file received and sent: written in place).
    package var hex: String {
        let bytes = Array(self)
        return String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            let digits: StaticString = "0123456789abcdef"
            digits.withUTF8Buffer { digits in
                for (index, byte) in bytes.enumerated() {
                    out[2 * index] = digits[Int(byte >> 4)]
                    out[2 * index + 1] = digits[Int(byte & 0x0F)]
                }
            }
            return bytes.count * 2
        }
    }
}

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

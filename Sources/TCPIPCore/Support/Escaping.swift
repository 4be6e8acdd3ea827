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
    package init(format2 byte: UInt8) {
        let hex = String(byte, radix: 16)
        self = hex.count == 1 ? "0" + hex : hex
    }

    /// At most 64 characters of text from the wire, for a reason or a log line (`…` marks the cut).
    package var clipped: String { count <= 64 ? self : String(prefix(64)) + "…" }
}

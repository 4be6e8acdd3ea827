import NIOCore

/// Hex helpers for golden vectors: spaces and newlines in the text are ignored.
public enum Hex {
    public static func bytes(_ text: String) -> [UInt8] {
        let digits = text.filter { $0.isHexDigit }
        precondition(digits.count % 2 == 0, "odd number of hex digits")
        var out: [UInt8] = []
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            out.append(UInt8(digits[index..<next], radix: 16)!)
            index = next
        }
        return out
    }

    public static func buffer(_ text: String) -> ByteBuffer { ByteBuffer(bytes: bytes(text)) }

    public static func string(_ buffer: ByteBuffer) -> String {
        buffer.readableBytesView.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }
}

import NIOCore

/// Writes control payloads as a sequence of fields: tag (1 byte), length (2 bytes, big-endian), value.
///
/// Strings are UTF-8; integers are big-endian and as wide as written (readers accept 1 to 8 bytes); a nested record is
/// its own TLV sequence. A reader skips tags it does not know, so fields can be added without a new protocol level.
public struct TLVWriter: Sendable {
    public private(set) var buffer: ByteBuffer

    public init(capacity: Int = 64) { buffer = ByteBufferAllocator().buffer(capacity: capacity) }

    /// The largest value one field can hold.
    public static let maxValueLength = Int(UInt16.max)

    /// Writes text; text longer than a field can hold is cut at a character boundary, so no text that came from the
    /// wire (a reason quoting a name, say) can make the encoder trap. Names and other fields with rules of their own
    /// are checked against their limits long before they get here.
    public mutating func write(_ tag: UInt8, string: String) {
        var text = Substring(string)
        while text.utf8.count > Self.maxValueLength {
            text = text.dropLast(max(1, (text.utf8.count - Self.maxValueLength) / 4))
        }
        buffer.writeMultipleIntegers(tag, UInt16(text.utf8.count))
        buffer.writeSubstring(text)
    }

    public mutating func write(_ tag: UInt8, string: String?) {
        if let string { write(tag, string: string) }
    }

    public mutating func write<I: FixedWidthInteger & UnsignedInteger>(_ tag: UInt8, integer: I) {
        buffer.writeMultipleIntegers(tag, UInt16(MemoryLayout<I>.size), integer)
    }

    public mutating func write<I: FixedWidthInteger & UnsignedInteger>(_ tag: UInt8, integer: I?) {
        if let integer { write(tag, integer: integer) }
    }

    public mutating func write(_ tag: UInt8, bytes: ByteBuffer) {
        precondition(bytes.readableBytes <= Self.maxValueLength, "TLV field \(tag) too long")
        buffer.writeMultipleIntegers(tag, UInt16(bytes.readableBytes))
        buffer.writeImmutableBuffer(bytes)
    }
}

/// One field read from a TLV payload.
public struct TLVField: Sendable {
    public var tag: UInt8
    public var value: ByteBuffer

    /// The value as UTF-8 text; invalid UTF-8 is an error, never silently repaired.
    public func string() throws -> String {
        guard let string = try? value.getUTF8ValidatedString(at: value.readerIndex, length: value.readableBytes) else {
            throw WireError.invalidUTF8(tag: tag)
        }
        return string
    }

    /// The value as an unsigned big-endian integer of 1 to 8 bytes.
    public func integer() throws -> UInt64 {
        guard (1...8).contains(value.readableBytes) else {
            throw WireError.integerTooWide(tag: tag, width: value.readableBytes)
        }
        var result: UInt64 = 0
        for byte in value.readableBytesView { result = result << 8 | UInt64(byte) }
        return result
    }

    public func integer<I: FixedWidthInteger & UnsignedInteger>(as: I.Type) throws -> I {
        let wide = try integer()
        guard let narrow = I(exactly: wide) else {
            throw WireError.invalidValue("field \(tag) holds \(wide), which does not fit \(I.bitWidth) bits")
        }
        return narrow
    }
}

/// Reads a TLV payload field by field. Every length is checked against what remains in the frame.
public struct TLVReader: Sendable {
    private var buffer: ByteBuffer

    public init(_ buffer: ByteBuffer) { self.buffer = buffer }

    public mutating func next() throws -> TLVField? {
        guard buffer.readableBytes > 0 else { return nil }
        guard let (tag, length) = buffer.readMultipleIntegers(as: (UInt8, UInt16).self) else {
            throw WireError.truncatedField(tag: buffer.getInteger(at: buffer.readerIndex) ?? 0)
        }
        guard let value = buffer.readSlice(length: Int(length)) else {
            throw WireError.fieldOutsideFrame(tag: tag, length: Int(length), remaining: buffer.readableBytes)
        }
        return TLVField(tag: tag, value: value)
    }

    /// Calls `body` for every field in order.
    public static func forEach(in buffer: ByteBuffer, _ body: (TLVField) throws -> Void) throws {
        var reader = TLVReader(buffer)
        while let field = try reader.next() { try body(field) }
    }
}

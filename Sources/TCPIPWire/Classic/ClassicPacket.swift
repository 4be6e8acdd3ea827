import NIOCore

/// The packet types of the seed programs' wire (the article's TCPIPServer and TCPIPClient), as numbered there.
/// "DoneRecievingFile" keeps the original's spelling in the docs; the case is spelled right.
public enum ClassicType: UInt16, Sendable, CaseIterable {
    case ping = 1
    case pingResponse = 2
    case requestCredentials = 3
    case myCredentials = 4
    case registered = 5
    case hostExiting = 6
    case clientData = 7
    case clientDisconnecting = 8
    case credentialsUpdate = 9
    case close = 10
    case message = 11
    case messageReceived = 12
    case fileStart = 13
    case fileChunk = 14
    case fileEnd = 15
    case doneReceivingFile = 16
}

/// One packet of the classic wire: always exactly 1024 bytes, little-endian, no length, no version. Four layouts
/// share the wire and the type (the UInt16 at 0) decides which applies: PACKET_CLIENTDATA for 7, PACKET_FILESTART for
/// 13 and 15, PACKET_FILECHUNK for 14, PACKET_DATA for every other type (docs/PROTOCOL.md, "The classic wire").
///
/// The packet is its bytes, with typed accessors at the layouts' offsets: any 1024 bytes are a packet (the wire has
/// nothing to check), every field reads back what was written, and a reader never traps on what a peer sent.
public struct ClassicPacket: Hashable, Sendable {
    public static let size = 1024

    public private(set) var bytes: [UInt8]

    /// A zeroed packet of this type.
    public init(_ type: ClassicType) {
        bytes = [UInt8](repeating: 0, count: Self.size)
        setU16(type.rawValue, at: 0)
    }

    /// The packet these 1024 bytes are; nil for any other count.
    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.size else { return nil }
        self.bytes = bytes
    }

    /// The type number at offset 0 (any value: the wire does not check it).
    public var rawType: UInt16 { u16(at: 0) }
    public var type: ClassicType? { ClassicType(rawValue: rawType) }

    // MARK: raw fields

    public func u16(at offset: Int) -> UInt16 { UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8 }

    public func u32(at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }

    public func i64(at offset: Int) -> Int64 {
        Int64(bitPattern: (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) })
    }

    public mutating func setU16(_ value: UInt16, at offset: Int) {
        bytes[offset] = UInt8(truncatingIfNeeded: value)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
    }

    public mutating func setU32(_ value: UInt32, at offset: Int) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }

    public mutating func setI64(_ value: Int64, at offset: Int) {
        let bits = UInt64(bitPattern: value)
        for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: bits >> (8 * index)) }
    }

    /// The raw bytes of a text field with its trailing NULs trimmed (what the original's readers keep).
    public func textBytes(_ field: ClassicField) -> ArraySlice<UInt8> {
        var end = field.offset + field.length
        while end > field.offset && bytes[end - 1] == 0 { end -= 1 }
        return bytes[field.offset..<end]
    }

    /// A text field as a string (Windows-1252, trailing NULs trimmed).
    public func text(_ field: ClassicField) -> String { ClassicText.decode(textBytes(field)) }

    /// Writes text bytes into a field: at most `field.length` of them (`length − 1` when `terminated`, so the last is
    /// NUL, as the original's writers of names do), the rest zero.
    public mutating func setText(_ text: [UInt8], _ field: ClassicField, terminated: Bool = false) {
        let room = terminated ? field.length - 1 : field.length
        let count = min(text.count, room)
        for index in 0..<field.length { bytes[field.offset + index] = index < count ? text[index] : 0 }
    }

    /// Writes raw bytes at `offset` (no more than fit in the packet).
    public mutating func setBytes<Bytes: Collection<UInt8>>(_ data: Bytes, at offset: Int) {
        var index = offset
        for byte in data where index < Self.size {
            bytes[index] = byte
            index += 1
        }
    }

    public var buffer: ByteBuffer { ByteBuffer(bytes: bytes) }
}

/// A text (or byte array) field of a classic layout: where it starts and how many bytes it has.
public struct ClassicField: Hashable, Sendable {
    public let offset: Int
    public let length: Int

    // PACKET_DATA
    public static let stringA = ClassicField(offset: 274, length: 300)
    public static let stringB = ClassicField(offset: 574, length: 300)
    public static let string150 = ClassicField(offset: 874, length: 150)
    // PACKET_CLIENTDATA
    public static let userName = ClassicField(offset: 16, length: 50)
    public static let usersAddress = ClassicField(offset: 66, length: 30)
    public static let alternateAddress = ClassicField(offset: 96, length: 30)
    public static let clientVersion = ClassicField(offset: 126, length: 30)
    public static let stationName = ClassicField(offset: 156, length: 50)
    // PACKET_FILESTART
    public static let fileName = ClassicField(offset: 12, length: 98)
    public static let filePart1 = ClassicField(offset: 110, length: 914)
    // PACKET_FILECHUNK
    public static let fileChunk = ClassicField(offset: 14, length: 1010)
}

/// Named fields of the four layouts.
extension ClassicPacket {
    // MARK: PACKET_DATA (every type but 7, 13, 14, 15)

    /// Bytes 2–3 of PACKET_DATA: 16, 1024 or 0 by type in the original, never read.
    public var packetSize: UInt16 {
        get { u16(at: 2) }
        set { setU16(newValue, at: 2) }
    }
    /// The message sub-type (Start 0, Guts 1, End 2).
    public var dataType: UInt16 {
        get { u16(at: 4) }
        set { setU16(newValue, at: 4) }
    }
    /// The target connection id (PACKET_DATA and PACKET_CLIENTDATA): 0 is the server, or everyone.
    public var idTo: UInt32 {
        get { u32(at: 8) }
        set { setU32(newValue, at: 8) }
    }
    public var idFrom: UInt32 {
        get { u32(at: 12) }
        set { setU32(newValue, at: 12) }
    }
    /// Data1…Data30 (1-based; 6–10, 16–20 and 26–30 are signed in the original: these are their bits).
    public func data(_ number: Int) -> UInt32 { u32(at: 18 + 4 * (number - 1)) }
    public mutating func setData(_ number: Int, _ value: UInt32) { setU32(value, at: 18 + 4 * (number - 1)) }
    /// DataLong1: where the originals carry every time value (.NET ticks).
    public var dataLong1: Int64 {
        get { i64(at: 178) }
        set { setI64(newValue, at: 178) }
    }

    // MARK: PACKET_CLIENTDATA (type 7)

    /// iClientID: the announced peer's id.
    public var clientID: UInt16 {
        get { u16(at: 206) }
        set { setU16(newValue, at: 206) }
    }
    public var listeningPort: UInt16 {
        get { u16(at: 214) }
        set { setU16(newValue, at: 214) }
    }

    // MARK: PACKET_FILESTART (13, 15) and PACKET_FILECHUNK (14)

    /// The recipient's id in the file layouts (16 bits at 2–3).
    public var fileIDTo: UInt16 {
        get { u16(at: 2) }
        set { setU16(newValue, at: 2) }
    }
    /// The sender's id in the file layouts (16 bits at 4–5), as the sender wrote it.
    public var fileIDFrom: UInt16 {
        get { u16(at: 4) }
        set { setU16(newValue, at: 4) }
    }
    public var fileID: UInt16 {
        get { u16(at: 6) }
        set { setU16(newValue, at: 6) }
    }
    /// File_Size (FILESTART).
    public var fileSize: UInt32 {
        get { u32(at: 8) }
        set { setU32(newValue, at: 8) }
    }
    /// Chunk_Size (FILECHUNK): the valid bytes of FilePartChunk.
    public var chunkSize: UInt16 {
        get { u16(at: 8) }
        set { setU16(newValue, at: 8) }
    }
    /// ChunkCount (FILECHUNK): 0, 1, 2, …
    public var chunkCount: UInt32 {
        get { u32(at: 10) }
        set { setU32(newValue, at: 10) }
    }
}

/// Cuts a classic byte stream into 1024-byte packets: nothing else marks where one ends.
public struct ClassicFramer: Sendable {
    private var pending: [UInt8] = []

    public init() {}

    /// Bytes held that do not make a whole packet yet.
    public var bufferedBytes: Int { pending.count }

    /// The next whole packet, taking from `buffer` no more bytes than it needs; nil when the bytes run out first.
    public mutating func next(from buffer: inout ByteBuffer) -> ClassicPacket? {
        let take = min(ClassicPacket.size - pending.count, buffer.readableBytes)
        pending += buffer.readBytes(length: take) ?? []
        guard pending.count == ClassicPacket.size, let packet = ClassicPacket(bytes: pending) else { return nil }
        pending.removeAll(keepingCapacity: true)
        return packet
    }

    /// Every whole packet the bytes received complete.
    public mutating func packets(from buffer: inout ByteBuffer) -> [ClassicPacket] {
        var out: [ClassicPacket] = []
        while buffer.readableBytes > 0, let packet = next(from: &buffer) { out.append(packet) }
        return out
    }
}

/// Text on the classic wire: one byte per character in the Windows ANSI code page, taken to be Windows-1252 (the
/// Western default; the wire declares none). Characters outside it become '?', as .NET's marshaller makes them.
public enum ClassicText {
    /// Windows-1252's 0x80–0x9F; the five bytes it leaves undefined read as the C1 controls of the same number, as
    /// Windows reads them.
    static let high: [UInt32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,
        0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
        0x0153, 0x9D, 0x017E, 0x0178,
    ]

    public static func decode<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        var text = String.UnicodeScalarView()
        for byte in bytes {
            let value = (0x80...0x9F).contains(byte) ? high[Int(byte) - 0x80] : UInt32(byte)
            text.append(Unicode.Scalar(value) ?? "?")
        }
        return String(text)
    }

    /// The bytes for `text`, one per character, and how many characters had to be replaced by '?'.
    public static func encode(_ text: String) -> (bytes: [UInt8], replaced: Int) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.unicodeScalars.count)
        var replaced = 0
        for scalar in text.unicodeScalars {
            if let byte = byte(for: scalar) {
                bytes.append(byte)
            } else {
                bytes.append(0x3F)
                replaced += 1
            }
        }
        return (bytes, replaced)
    }

    static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        let value = scalar.value
        if value < 0x80 || (0xA0...0xFF).contains(value) { return UInt8(value) }
        if let index = high.firstIndex(of: value), ![0x81, 0x8D, 0x8F, 0x90, 0x9D].contains(value) {
            return UInt8(0x80 + index)
        }
        return nil
    }
}

/// .NET's DateTime.Ticks: 100 ns intervals since 0001-01-01T00:00:00, where the classic wire carries times.
public enum ClassicTicks {
    public static let unixEpoch: Int64 = 621_355_968_000_000_000

    /// Ticks for a time in microseconds since 1970.
    public static func ticks(microseconds: WireTime) -> Int64 {
        unixEpoch &+ Int64(clamping: microseconds) &* 10
    }

    /// A UTC time as .NET's en-US `DateTime.ToString()` writes it ("12/5/2023 10:15:30 AM"): what the original client
    /// puts in FileEnd, and what its en-US (or invariant) `Convert.ToDateTime` reads back.
    public static func usDate(microseconds: WireTime) -> String {
        let seconds = Int64(clamping: microseconds / 1_000_000)
        let days = seconds / 86_400
        let time = seconds % 86_400
        // Days since 1970 to a proleptic Gregorian date (H. Hinnant's civil_from_days).
        let shifted = days + 719_468
        let era = shifted / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        let hour = time / 3600
        let clock = hour % 12 == 0 ? 12 : hour % 12
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(month)/\(day)/\(year) \(clock):\(two(time / 60 % 60)):\(two(time % 60)) \(hour < 12 ? "AM" : "PM")"
    }
}

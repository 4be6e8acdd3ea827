import NIOCore

/// The fixed header that follows every frame's length prefix.
///
/// ```
/// offset size field
///  0      4   length    bytes after this field (header rest + payload), big-endian
///  4      2   type      PacketType
///  6      2   dataType  sub-type, meaning depends on type
///  8      1   maskTo    0 hub, 1 one client (idTo), 2 all other clients
///  9      1   level     protocol level (1)
/// 10      4   idTo      destination client id when maskTo is 1
/// 14      4   idFrom    sender's id, stamped by the hub (0 is the hub itself)
/// 18      …   payload
/// ```
public struct PacketHeader: Hashable, Sendable {
    public var type: PacketType
    public var dataType: UInt16
    public var maskTo: MaskTo
    public var level: UInt8
    public var idTo: UInt32
    public var idFrom: UInt32

    /// The protocol level this code speaks.
    public static let currentLevel: UInt8 = 1
    /// Bytes of the length prefix.
    public static let lengthPrefixSize = 4
    /// Bytes of the header after the length prefix.
    public static let sizeAfterLength = 14
    /// Bytes of the whole header, length prefix included.
    public static let size = lengthPrefixSize + sizeAfterLength
    /// The id the hub uses for itself in `idFrom`.
    public static let hubID: UInt32 = 0

    public init(
        type: PacketType, dataType: UInt16 = 0, maskTo: MaskTo = .hub, level: UInt8 = PacketHeader.currentLevel,
        idTo: UInt32 = 0, idFrom: UInt32 = 0
    ) {
        self.type = type
        self.dataType = dataType
        self.maskTo = maskTo
        self.level = level
        self.idTo = idTo
        self.idFrom = idFrom
    }
}

extension ByteBuffer {
    /// Writes the length prefix and header for a payload of `payloadLength` bytes.
    @discardableResult
    public mutating func writePacketHeader(_ header: PacketHeader, payloadLength: Int) -> Int {
        writeMultipleIntegers(
            UInt32(PacketHeader.sizeAfterLength + payloadLength),
            header.type.rawValue,
            header.dataType,
            header.maskTo.rawValue,
            header.level,
            header.idTo,
            header.idFrom
        )
    }
}

import NIOCore

/// A client asks the hub's store (StoreQuery, 68, maskTo 1 to the store's id) for the files waiting in it or for
/// the receipts of queued files.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | requestID | u32, echoed in every report |
/// | 2 | kind | u8: 1 the queue, 2 receipts, 3 a receiver's key (for sealing what is queued for it) |
/// | 3 | all | u8 1: everyone's, not only the asker's (an operator only) |
/// | 4 | name | UTF-8, the receiver a kind 3 query asks about |
public struct StoreQuery: ControlPayload, Hashable {
    public enum Kind: UInt8, Sendable {
        case queue = 1
        case receipts = 2
        /// The key of the receiver named in tag 4, as the store saw it register: one entry
        /// `{"name":…,"key":ID,"publicKey":BASE64}` (none when the store knows no key for that name).
        case receiver = 3
    }

    public var requestID: UInt32
    public var kind: Kind
    public var all: Bool
    /// The receiver a `receiver` query asks about.
    public var name: String?

    public init(requestID: UInt32, kind: Kind, all: Bool = false, name: String? = nil) {
        self.requestID = requestID
        self.kind = kind
        self.all = all
        self.name = name
    }

    public init(tlv: ByteBuffer) throws {
        var kind: Kind?
        self.init(requestID: 0, kind: .queue)
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: requestID = try field.integer(as: UInt32.self)
            case 2:
                let raw = try field.integer(as: UInt8.self)
                guard let known = Kind(rawValue: raw) else {
                    throw WireError.invalidValue("unknown StoreQuery kind \(raw)")
                }
                kind = known
            case 3: all = try field.integer(as: UInt8.self) == 1
            case 4: name = try field.string()
            default: break
            }
        }
        guard let kind else { throw WireError.missingField("query kind") }
        self.kind = kind
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: requestID)
        writer.write(2, integer: kind.rawValue)
        if all { writer.write(3, integer: UInt8(1)) }
        writer.write(4, string: name)
    }
}

/// The store's answer to a ``StoreQuery`` (StoreReport, 69): entries as JSON objects, in as many reports as they
/// need; the last one says so.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | requestID | u32 |
/// | 2 | entry | UTF-8, one JSON object; repeated |
/// | 3 | final | u8 1: the last report for this request |
/// | 4 | refusal | UTF-8: why the store will not answer (then final, and no entries) |
public struct StoreReport: ControlPayload, Hashable {
    public var requestID: UInt32
    public var entries: [String]
    public var final: Bool
    public var refusal: String?

    public init(requestID: UInt32, entries: [String], final: Bool, refusal: String? = nil) {
        self.requestID = requestID
        self.entries = entries
        self.final = final
        self.refusal = refusal
    }

    public init(tlv: ByteBuffer) throws {
        self.init(requestID: 0, entries: [], final: false)
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: requestID = try field.integer(as: UInt32.self)
            case 2: entries.append(try field.string())
            case 3: final = try field.integer(as: UInt8.self) == 1
            case 4: refusal = try field.string()
            default: break
            }
        }
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: requestID)
        for entry in entries { writer.write(2, string: entry) }
        if final { writer.write(3, integer: UInt8(1)) }
        writer.write(4, string: refusal)
    }
}

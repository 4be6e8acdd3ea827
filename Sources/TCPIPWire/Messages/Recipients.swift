import NIOCore

/// The peers a client's group packets (maskTo 3) go to (Recipients, 67, sent to the hub). Replaces the previous list.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | id | u32, repeated once per peer |
///
/// The hub answers an id that is not connected with Error `unknown-peer` naming it, and tells the client with
/// ClientDisconnecting when a peer of its group leaves, whether or not it asked for updates.
public struct Recipients: ControlPayload, Hashable {
    public var ids: [UInt32]

    public init(ids: [UInt32]) { self.ids = ids }

    public init(tlv: ByteBuffer) throws {
        var ids: [UInt32] = []
        try TLVReader.forEach(in: tlv) { field in
            if field.tag == 1 { ids.append(try field.integer(as: UInt32.self)) }
        }
        self.init(ids: ids)
    }

    public func write(to writer: inout TLVWriter) {
        for id in ids { writer.write(1, integer: id) }
    }
}

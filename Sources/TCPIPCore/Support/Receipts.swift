import TCPIPWire

extension MessageReceipt {
    /// The receipt as a packet to the sender of the message.
    public func packet(to peer: UInt32) -> Packet {
        packet(PacketHeader(type: .messageReceived, maskTo: .client, idTo: peer))
    }
}

extension FileReceipt {
    /// The receipt as a packet to the sender of the file.
    public func packet(to peer: UInt32) -> Packet {
        packet(PacketHeader(type: .doneReceivingFile, maskTo: .client, idTo: peer))
    }
}

extension FileResume {
    /// The offer as a packet to the sender of the file.
    public func packet(to peer: UInt32) -> Packet {
        packet(PacketHeader(type: .fileResume, maskTo: .client, idTo: peer))
    }
}

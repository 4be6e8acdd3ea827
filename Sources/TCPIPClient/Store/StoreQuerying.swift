import TCPIPCore
import TCPIPWire

/// Asks the hub's store what waits in it or what became of queued files (`tcpipctl queue`, `tcpipctl receipts`).
public enum StoreQuerying {
    /// The store's entries (JSON objects, one per line's worth). Throws 69 when the hub keeps no store and 77 when
    /// the store refuses (`all` without being an operator).
    public static func run(
        _ kind: StoreQuery.Kind, all: Bool, name: String? = nil, session: ClientSession, timeout: Duration
    ) async throws -> [String] {
        guard let store = try await session.lookUpStore() else {
            throw TCPIPError.unavailable("the hub keeps no store (tcpipd --store DIR)")
        }
        let query = StoreQuery(requestID: 1, kind: kind, all: all, name: name)
        try await session.send(query.packet(PacketHeader(type: .storeQuery, maskTo: .client, idTo: store.id)))
        session.setDeadline(after: timeout, doing: "waiting for the hub's store to answer")
        defer { session.clearDeadline() }
        var entries: [String] = []
        while true {
            let packet = try await session.next()
            // Only the store's own reports: its role is one no other peer can register.
            guard packet.header.type == .storeReport, packet.header.idFrom == store.id,
                let report = try? StoreReport(tlv: packet.payload), report.requestID == query.requestID
            else { continue }
            if let refusal = report.refusal { throw TCPIPError(.permissionDenied, refusal) }
            entries += report.entries
            if report.final { return entries }
        }
    }
}

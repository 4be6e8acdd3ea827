import NIOCore

/// Who holds whom back, in one place. A connection that relays a packet to a destination left over its high-water mark
/// is not read again until every destination it fed in that way has drained below its low mark; the hub's own notices
/// (a peer joined, left, changed; pings; errors) hold nobody back — a destination that does not read them is dropped at
/// its write timeout instead. The hub's write buffer per connection is NIO's, bounded by these marks: what a source
/// can add after the mark is passed is what was already read from it (one read burst).
struct HubBackpressure {
    /// Source → the destinations it waits for.
    private var blockedOn: [ConnectionID: Set<ConnectionID>] = [:]
    /// Destination → the sources waiting for it.
    private var waiters: [ConnectionID: Set<ConnectionID>] = [:]
    /// When each unwritable destination stopped being writable.
    private var unwritableSince: [ConnectionID: NIODeadline] = [:]

    /// A packet was written to `destination`, which is `writable` after it. A packet `source` relayed (not one of the
    /// hub's own) to a destination over its mark holds `source` back. Returns true when `source` must stop reading
    /// now (it was not held back before).
    @discardableResult
    mutating func wrote(relayed: Bool, from source: ConnectionID?, to destination: ConnectionID, writable: Bool)
        -> Bool
    {
        guard relayed, !writable, let source else { return false }
        let wasReading = mayRead(source)
        blockedOn[source, default: []].insert(destination)
        waiters[destination, default: []].insert(source)
        return wasReading
    }

    /// Whether the hub may read from `id`.
    func mayRead(_ id: ConnectionID) -> Bool { blockedOn[id]?.isEmpty ?? true }

    /// Connections the hub stopped reading: their silence is not their fault.
    var held: Set<ConnectionID> { Set(blockedOn.keys) }

    /// `id`'s writability changed. Returns the sources that may read again.
    mutating func writabilityChanged(_ id: ConnectionID, writable: Bool, now: NIODeadline) -> [ConnectionID] {
        if writable {
            unwritableSince[id] = nil
            return release(id)
        }
        if unwritableSince[id] == nil { unwritableSince[id] = now }
        return []
    }

    /// `id` is gone: nobody waits for it, and it waits for nobody. Returns the sources that may read again.
    mutating func removed(_ id: ConnectionID) -> [ConnectionID] {
        unwritableSince[id] = nil
        for destination in blockedOn.removeValue(forKey: id) ?? [] {
            waiters[destination]?.remove(id)
            if waiters[destination]?.isEmpty == true { waiters[destination] = nil }
        }
        return release(id)
    }

    /// Destinations unwritable since before `deadline`, with the sources waiting for each.
    func stalled(since deadline: NIODeadline) -> [(destination: ConnectionID, waiting: [ConnectionID])] {
        unwritableSince.filter { $0.value < deadline }.keys.sorted { $0.rawValue < $1.rawValue }.map {
            ($0, (waiters[$0] ?? []).sorted { $0.rawValue < $1.rawValue })
        }
    }

    private mutating func release(_ destination: ConnectionID) -> [ConnectionID] {
        var resumed: [ConnectionID] = []
        for source in waiters.removeValue(forKey: destination) ?? [] {
            blockedOn[source]?.remove(destination)
            if blockedOn[source]?.isEmpty == true {
                blockedOn[source] = nil
                resumed.append(source)
            }
        }
        return resumed.sorted { $0.rawValue < $1.rawValue }
    }
}

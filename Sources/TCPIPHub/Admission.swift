import Logging
import NIOCore
import TCPIPWire

/// Who is waiting to register, by source, and whom to turn away or shed when a limit is reached: the hub's answer to
/// connections that open and never speak (OpenSSH's MaxStartups and PerSourceMaxStartups, nginx's `limit_conn`).
///
/// - A source (an IPv4 address, an IPv6 /64) holds at most `perSource` unregistered connections; the next one from it
///   is turned away (`busy`), so a flood from one source only ever competes with itself. Turning away the newcomer,
///   not shedding that source's oldest, keeps a burst of honest clients behind one address from livelocking: the
///   first `perSource` always get through.
/// - All sources together hold at most `total`. A newcomer past that is admitted and a waiting connection is shed to
///   make room: the oldest of the source that holds the most, or, when every source holds just one, a random one. No
///   set of sources can keep a newcomer out, and one that holds more than the others pays first.
///
/// Registration, a refusal or a close takes a connection out (``leave(_:)``).
struct Admission {
    enum Decision: Equatable {
        /// Admitted; nobody had to go.
        case admit
        /// Admitted, and this waiting connection must be closed to make room.
        case admitShedding(ConnectionID)
        /// Turned away: its source already has `perSource` connections waiting.
        case refuse
    }

    let perSource: Int
    let total: Int
    /// Waiting connections by source, oldest first (connection ids only grow).
    private var waiting: [String: [ConnectionID]] = [:]
    private var sourceOf: [ConnectionID: String] = [:]

    init(perSource: Int, total: Int) {
        self.perSource = max(1, perSource)
        self.total = max(1, total)
    }

    /// Connections waiting to register now.
    var count: Int { sourceOf.count }

    /// How many connections from `source` wait now.
    func waiting(from source: String) -> Int { waiting[source]?.count ?? 0 }

    /// A connection from `source` opened.
    mutating func arrive<R: RandomNumberGenerator>(_ id: ConnectionID, from source: String, random: inout R)
        -> Decision
    {
        if waiting(from: source) >= perSource { return .refuse }
        var decision = Decision.admit
        if count >= total, let victim = victim(random: &random) {
            leave(victim)
            decision = .admitShedding(victim)
        }
        waiting[source, default: []].append(id)
        sourceOf[id] = source
        return decision
    }

    mutating func arrive(_ id: ConnectionID, from source: String) -> Decision {
        var random = SystemRandomNumberGenerator()
        return arrive(id, from: source, random: &random)
    }

    /// The connection registered or went away.
    mutating func leave(_ id: ConnectionID) {
        guard let source = sourceOf.removeValue(forKey: id) else { return }
        waiting[source]?.removeAll { $0 == id }
        if waiting[source]?.isEmpty == true { waiting[source] = nil }
    }

    /// The connection to shed: the oldest of the source with the most waiting (the oldest such source on a tie), or a
    /// random one when every source has one.
    private func victim<R: RandomNumberGenerator>(random: inout R) -> ConnectionID? {
        var most: [ConnectionID]?
        for list in waiting.values {
            guard let current = most else {
                most = list
                continue
            }
            if list.count > current.count || (list.count == current.count && list[0].rawValue < current[0].rawValue) {
                most = list
            }
        }
        guard let most else { return nil }
        if most.count == 1 { return waiting.values.randomElement(using: &random)?.first }
        return most.first
    }

    /// The source a remote address counts under: the IPv4 address, or the /64 of an IPv6 one (an IPv4-mapped IPv6
    /// address counts as its IPv4 address). A host gets a whole /64 as easily as one address.
    static func source(of address: SocketAddress?) -> String {
        switch address {
        case .v4(let v4):
            return address?.ipAddress ?? "\(v4)"
        case .v6(let v6):
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
                return bytes[12..<16].map { String($0) }.joined(separator: ".")
            }
            let groups = stride(from: 0, to: 8, by: 2).map {
                String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
            }
            return groups.joined(separator: ":") + "::/64"
        default:
            return "other"
        }
    }
}

/// The hub's log of connections turned away or shed: the first at once, then one line with the counts every 10 s at
/// most, so a flood of connections does not become a flood of log lines (nor cost the hub the time to write them).
struct AdmissionLog {
    private var refused = 0
    private var shed = 0
    private var lastAddress = ""
    private var loggedAt: WireTime?
    static let interval: WireTime = 10_000_000

    mutating func count(refused: Int = 0, shed: Int = 0, address: String, now: WireTime, logger: Logger) {
        self.refused += refused
        self.shed += shed
        lastAddress = address
        if loggedAt.map({ now >= $0 + Self.interval }) ?? true { log(now: now, logger: logger) }
    }

    /// Logs what was counted since the last line, once the interval has passed.
    mutating func flush(now: WireTime, logger: Logger) {
        guard refused + shed > 0, let loggedAt, now >= loggedAt + Self.interval else { return }
        log(now: now, logger: logger)
    }

    private mutating func log(now: WireTime, logger: Logger) {
        logger.notice(
            "too many connections waiting to register",
            metadata: [
                "refused": "\(refused)", "shed": "\(shed)", "last": "\(lastAddress)",
                "limits": "--max-unregistered-per-source, --max-unregistered",
            ])
        refused = 0
        shed = 0
        loggedAt = now
    }
}

/// A `HOST:PORT` pair as given on the command line or in `TCPIP_SERVER`. IPv6 hosts go in brackets: `[::1]:9999`.
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    /// The classic port of the original server.
    public static let defaultPort = 9999
    /// Where the hub listens and clients connect when nothing else is said.
    public static let defaultAddress = HostPort(host: "127.0.0.1", port: defaultPort)

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`, `[IPv6]:PORT`, or a bare `HOST` (default port). Throws a usage error otherwise.
    public init(parsing text: String, defaultPort: Int = HostPort.defaultPort) throws {
        var host = Substring(text)
        var portText: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else {
                throw TCPIPError.usage("invalid address '\(text)': missing ']' after an IPv6 host")
            }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw TCPIPError.usage("invalid address '\(text)'") }
                portText = rest.dropFirst()
            }
        } else if let colon = host.lastIndex(of: ":") {
            guard host.firstIndex(of: ":") == colon else {
                throw TCPIPError.usage("invalid address '\(text)': put an IPv6 host in brackets, e.g. [::1]:9999")
            }
            portText = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        guard !host.isEmpty else { throw TCPIPError.usage("invalid address '\(text)': the host is empty") }
        var port = defaultPort
        if let portText {
            guard let value = Int(portText), (0...65535).contains(value) else {
                throw TCPIPError.usage("invalid port in '\(text)': expected a number from 0 to 65535")
            }
            port = value
        }
        self.host = String(host)
        self.port = port
    }

    /// True for 127.0.0.0/8, ::1 and `localhost`.
    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

import ArgumentParser
import FoundationEssentials
import Logging
import TCPIPClient
import TCPIPCore

#if canImport(Glibc)
    import Glibc
#endif

/// Shell completion of peer names from the live hub (`--to <TAB>`), using TCPIP_SERVER and the token variables.
/// Gives nothing when the hub cannot be reached within a second.
public enum PeerCompletion {
    public static let kind = CompletionKind.custom { (_: [String], _: Int, prefix: String) async -> [String] in
        await names(prefix: prefix)
    }

    static func names(prefix: String) async -> [String] {
        let environment = ProcessInfo.processInfo.environment
        var configuration = ClientConfiguration()
        if let server = environment["TCPIP_SERVER"], let address = try? HostPort(parsing: server) {
            configuration.server = address
        }
        configuration.token = try? Token.resolve(tokenFile: nil, environment: environment)
        configuration.timeout = .seconds(1)
        configuration.flags = [.wantsRoster]
        let logger = Logger(label: "completion", factory: { _ in SwiftLogNoOpLogHandler() })
        let names = try? await ClientSession.run(configuration, logger: logger) { session in session.roster.map(\.name)
        }
        return (names ?? []).filter { $0.hasPrefix(prefix) }.sorted()
    }
}

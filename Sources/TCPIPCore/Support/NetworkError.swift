import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// A network error as a person reads it: "connection refused", "cannot resolve HOST", not NIO's type names.
package func describeNetworkError(_ error: any Error) -> String {
    if let failure = error as? NIOConnectionError {
        if let first = failure.connectionErrors.first { return describeNetworkError(first.error) }
        if failure.dnsAError != nil || failure.dnsAAAAError != nil { return "cannot resolve \(failure.host)" }
        return "no address for \(failure.host)"
    }
    if let ioError = error as? IOError { return String(cString: strerror(ioError.errnoCode)).lowercased() }
    if case ChannelError.connectTimeout = error { return "connection timed out" }
    return "\(error)"
}

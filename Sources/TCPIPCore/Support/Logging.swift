import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How log lines look on stderr.
public enum LogFormat: String, Sendable, CaseIterable {
    /// `2026-11-25T09:49:00.123Z info tcpipd: message key=value`, one line per event.
    case text
    /// One JSON object per line: `{"time":…,"level":…,"label":…,"message":…,"metadata":{…}}`.
    case json
}

/// A log handler that writes one line per event to stderr, so stdout carries data only. Messages are escaped: a
/// newline or an escape sequence from the wire cannot start a forged log line.
public struct StderrLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let format: LogFormat

    public init(label: String, level: Logger.Level, format: LogFormat) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    /// Sets up logging for a program, once, before anything logs.
    public static func bootstrap(level: Logger.Level, format: LogFormat) {
        LoggingSystem.bootstrap { label in StderrLogHandler(label: label, level: level, format: format) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let time = WireClock.rfc3339(WireClock.now())
        var line: String
        switch format {
        case .text:
            line = "\(time) \(event.level) \(label): \(escapedForLog(event.message.description))"
            for key in merged.keys.sorted() {
                line += " \(key)=\(escapedForLog(merged[key]!.description))"
            }
        case .json:
            var fields: [(String, JSON)] = [
                ("time", .string(time)), ("level", .string(event.level.rawValue)), ("label", .string(label)),
                ("message", .string(event.message.description)),
            ]
            if !merged.isEmpty {
                fields.append(
                    ("metadata", .object(merged.keys.sorted().map { ($0, .string(merged[$0]!.description)) })))
            }
            line = JSON.object(fields).rendered()
        }
        line += "\n"
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }
                offset += written
            }
        }
    }
}

import TCPIPWire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The wall clock as the wire carries it: microseconds since the Unix epoch.
public enum WireClock {
    public static func now() -> WireTime {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return WireTime(ts.tv_sec) * 1_000_000 + WireTime(ts.tv_nsec / 1000)
    }

    /// RFC 3339 in UTC with milliseconds: `2026-11-25T09:49:00.123Z`.
    public static func rfc3339(_ time: WireTime) -> String {
        var seconds = time_t(time / 1_000_000)
        let millis = Int(time % 1_000_000) / 1000
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }
}

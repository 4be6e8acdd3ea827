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
        let millis = Int32(time % 1_000_000 / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        // Digits written in place: `listen` stamps every message, and building it from padded Strings was a tenth
        // of its time.
        return String(unsafeUninitializedCapacity: 24) { out in
            var index = 0
            func put(_ value: Int32, _ width: Int) {
                var value = max(0, value)
                for position in stride(from: index + width - 1, through: index, by: -1) {
                    out[position] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
                index += width
            }
            func put(_ character: Unicode.Scalar) {
                out[index] = UInt8(ascii: character)
                index += 1
            }
            put(parts.tm_year + 1900, 4)
            put("-")
            put(parts.tm_mon + 1, 2)
            put("-")
            put(parts.tm_mday, 2)
            put("T")
            put(parts.tm_hour, 2)
            put(":")
            put(parts.tm_min, 2)
            put(":")
            put(parts.tm_sec, 2)
            put(".")
            put(millis, 3)
            put("Z")
            return index
        }
    }
}

extension Duration {
    /// Whole microseconds, for arithmetic with ``WireTime``.
    package var microseconds: UInt64 {
        let (seconds, attoseconds) = components
        return UInt64(max(0, seconds)) * 1_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000_000)
    }
}

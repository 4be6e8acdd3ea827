import CTCPIPSystem

#if canImport(Glibc)
    import Glibc
#endif

/// glibc's allocator, set for chunk-sized buffers in `tcpipctl`, which sends files.
public enum MemoryTuning {
    /// Buffers of a chunk's size (up to 4 MiB: a chunk, a sealed chunk, its box) come from the heap and are reused,
    /// instead of each being mapped fresh and faulted in page by page: glibc maps anything over 128 KiB until its
    /// dynamic threshold adapts, and gives freed memory back past its trim threshold, per thread arena. Sealing makes
    /// two such buffers per chunk; with the defaults a sealed 512 MiB send spent 0.7–0.9 s of system time, most of it
    /// in page faults, with these 0.25–0.4 s. Freed memory kept is bounded by the trim threshold. Not for the
    /// receiver: its frames grow by realloc, which a mapped buffer does without a copy (with these, the receiver took
    /// more CPU). A GLIBC_TUNABLES setting for malloc wins.
    public static func forLargeBuffers() {
        #if canImport(Glibc)
            if let tunables = getenv("GLIBC_TUNABLES"), String(cString: tunables).contains("malloc.") { return }
            tcpip_malloc_thresholds(4 << 20, 32 << 20)
        #endif
    }
}

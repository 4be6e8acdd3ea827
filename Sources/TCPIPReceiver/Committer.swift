import Logging
import NIOConcurrencyHelpers
import NIOPosix
import TCPIPClient
import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

extension FileReceiver {
    /// Makes verified files durable in batches (group commit) while the receiver goes on taking packets: whatever
    /// finished while one batch was syncing forms the next batch, so a burst of small files costs two syncs per batch
    /// instead of several per file. Each file's receipt is sent only after its batch is on disk.
    public final class Committer: Sendable {
        struct Job: Sendable {
            var file: Spool.Finished
            var transferID: UInt32
            /// Filled in with the stored name once published.
            var published: Published
            /// Deduplicated against what is stored (its SHA-256 was announced up front; stdin's never is).
            var deduplicate = true
            /// Handed to `onPublished` (the --exec hook) once published.
            var notify = true
            /// Came sealed: its receipt, which crosses the hub, leaves out the stored name (the real one, or near it).
            var sealed = false
        }

        private struct State {
            var pending: [Job] = []
            /// Files handed in and not yet answered.
            var outstanding = 0
        }

        private let state = NIOLockedValueBox(State())
        private let signals: AsyncStream<Void>
        private let signal: AsyncStream<Void>.Continuation
        private let spool: Spool
        private let logger: Logger
        private let onPublished: (@Sendable (Published) -> Void)?
        private let index: SpoolIndex?

        /// Receipts for senders on a direct link go back on it.
        private let direct: DirectListener?

        init(
            spool: Spool, logger: Logger, index: SpoolIndex?, direct: DirectListener?,
            onPublished: (@Sendable (Published) -> Void)?
        ) {
            self.direct = direct
            (signals, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            self.spool = spool
            self.logger = logger
            self.index = index
            self.onPublished = onPublished
        }

        /// Files handed in and not yet answered.
        public var outstanding: Int { state.withLockedValue { $0.outstanding } }

        func enqueue(_ job: Job) {
            state.withLockedValue {
                $0.pending.append(job)
                $0.outstanding += 1
            }
            signal.yield()
        }

        /// Commits batches until ``finish()`` and everything handed in before it is answered. Receipts go out through
        /// `sender`; if the connection is gone the files are published all the same. `onBatch` runs after each batch.
        public func run(sender: PacketSender, onBatch: @Sendable () async -> Void = {}) async {
            for await _ in signals {
                while true {
                    let batch = state.withLockedValue { state in
                        defer { state.pending.removeAll() }
                        return state.pending
                    }
                    if batch.isEmpty { break }
                    await commit(batch, sender: sender)
                    state.withLockedValue { $0.outstanding -= batch.count }
                    await onBatch()
                }
            }
        }

        /// No more files will be handed in: ``run(sender:onBatch:)`` returns once the last batch is answered.
        public func finish() { signal.finish() }

        private func commit(_ all: [Job], sender: PacketSender) async {
            // The same file (name sent, SHA-256) may arrive twice at once: sent again while the hub's store delivers
            // it, or by two senders. Its FileStarts both passed the already-stored check; only one may be published.
            var batch: [Job] = []
            var duplicates: [(job: Job, first: Int?, storedAs: String?)] = []
            var firsts: [String: Int] = [:]
            for job in all {
                guard let index, job.deduplicate else {
                    batch.append(job)
                    continue
                }
                let key = job.published.sentAs + "\u{0}" + job.published.sha256
                if let storedAs = index.stored(sentAs: job.published.sentAs, sha256: job.published.sha256) {
                    duplicates.append((job, nil, storedAs))
                } else if let first = firsts[key] {
                    duplicates.append((job, first, nil))
                } else {
                    firsts[key] = batch.count
                    batch.append(job)
                }
            }
            let spool = self.spool
            let files = batch.map(\.file)
            let results: [Spool.Committed]
            do {
                // A future, not the async form: a verified file is published even when the session's task is being
                // cancelled (its connection just ended), or its temporary file would be left behind.
                results = try await NIOThreadPool.singleton.runIfActive(
                    eventLoop: MultiThreadedEventLoopGroup.singleton.any()
                ) { spool.commit(files) }.get()
            } catch {
                // The thread pool is shutting down (the process is ending): nothing was published.
                for file in files {
                    Spool.removeTemporary(file.temporary)
                    close(file.descriptor)
                }
                results = files.map { _ in Spool.Committed(stored: .failure(.writeFailed(ECANCELED)), recordError: nil)
                }
            }
            var receipts: [Packet] = []
            for (job, result) in zip(batch, results) {
                let to = job.published.fromID
                let receipt: FileReceipt
                switch result.stored {
                case .success(let storedAs):
                    if let problem = result.recordError {
                        logger.warning(
                            "could not write the metadata record",
                            metadata: ["file": "\(escapedForLog(storedAs))", "error": "\(problem)"])
                    }
                    logger.info(
                        "stored file",
                        metadata: [
                            "file": "\(escapedForLog(storedAs))", "bytes": "\(job.published.size)",
                            "from": "\(escapedForLog(job.published.from?.name ?? "peer \(to)"))",
                        ])
                    var published = job.published
                    index?.add(
                        sentAs: published.sentAs, sha256: published.sha256, storedAs: storedAs, size: published.size)
                    published.storedAs = storedAs
                    published.path = spool.root + "/" + storedAs
                    if job.notify { onPublished?(published) }
                    receipt = FileReceipt(
                        transferID: job.transferID, status: .stored, storedAs: job.sealed ? nil : storedAs,
                        size: job.published.size)
                case .failure(let error):
                    logger.warning(
                        "file failed", metadata: ["file": "\(escapedForLog(job.file.name))", "reason": "\(error)"])
                    receipt = FileReceipt(
                        transferID: job.transferID, status: .storageFailed,
                        reason: error.isNoSpace ? "the receiver's disk is full" : error.description)
                }
                receipts.append(receipt.packet(to: to))
            }
            // A copy is dropped only once the file is safely stored; when the first copy failed, the next is committed.
            var again: [Job] = []
            for (job, first, known) in duplicates {
                var storedAs = known
                if let first {
                    guard case .success(let name) = results[first].stored else {
                        again.append(job)
                        continue
                    }
                    storedAs = name
                }
                Spool.removeTemporary(job.file.temporary)
                close(job.file.descriptor)
                logger.info("already stored", metadata: ["file": "\(escapedForLog(storedAs ?? job.published.sentAs))"])
                receipts.append(
                    FileReceipt(
                        transferID: job.transferID, status: .alreadyStored, storedAs: job.sealed ? nil : storedAs,
                        size: job.published.size
                    ).packet(to: job.published.fromID))
            }
            let viaHub = direct?.send(receipts) ?? receipts
            try? await sender.send(contentsOf: viaHub)
            if !again.isEmpty { await commit(again, sender: sender) }
        }
    }
}

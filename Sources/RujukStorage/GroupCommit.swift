import Dispatch
import GRDB
import RujukCore

/// Writes from many callers at once, committed together: each caller's work runs in a savepoint
/// of one shared transaction, so a burst of callers waits for one fsync instead of one each in a
/// row. The adapter's API runs every write an agency system asks for through one of these.
///
/// Each caller gets the outcome it would have had alone, in the order the callers came:
/// - work that throws undoes only itself (its savepoint is rolled back), and its caller gets
///   the error while the others commit;
/// - if the transaction itself fails (the disk is full, an I/O error) nothing of the group is
///   committed, and each caller's work is then run again in a transaction of its own — so the
///   work must do nothing but its database writes.
///
/// When `write` returns, the work is committed, as durable as the database's `synchronous`
/// setting makes it. A caller that stops waiting (its task cancelled) does not stop its write.
public final class GroupCommit: @unchecked Sendable {
    private struct Job {
        let work: (Database) throws -> Void
        let finish: (Error?) -> Void
    }

    private let pool: DatabasePool
    private let queue: DispatchQueue
    private let largestGroup: Int
    private let state = Locked<(waiting: [Job], committing: Bool)>(([], false))
    private let counts = Locked<(groups: Int, callers: Int, largest: Int)>((0, 0, 0))

    /// - Parameter largestGroup: at most this many callers share a transaction; the rest wait
    ///   for the next one.
    public init(pool: DatabasePool, label: String, largestGroup: Int = 256) {
        self.pool = pool
        self.largestGroup = max(1, largestGroup)
        queue = DispatchQueue(label: label)
    }

    /// Runs `work` in the next group's transaction, and returns its result once committed.
    /// The waiting holds no thread.
    public func write<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let result = Locked<T?>(nil)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            submit(Job(work: { db in
                let value = try work(db)
                result.withLock { $0 = value }
            }, finish: { error in
                if let error { continuation.resume(throwing: error) } else { continuation.resume() }
            }))
        }
        return result.current!
    }

    /// The same, blocking the calling thread until committed (for callers that are not async).
    public func writeAndWait<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) throws -> T {
        let result = Locked<Result<T, Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        submit(Job(work: { db in
            let value = try work(db)
            result.withLock { $0 = .success(value) }
        }, finish: { error in
            if let error { result.withLock { $0 = .failure(error) } }
            done.signal()
        }))
        done.wait()
        return try result.current!.get()
    }

    /// Transactions committed (or tried) so far, the callers they held, and the most one held.
    public var totals: (groups: Int, callers: Int, largest: Int) { counts.current }

    /// Callers waiting for a transaction that has not begun.
    public var waiting: Int { state.current.waiting.count }

    private func submit(_ job: Job) {
        let start = state.withLock { state -> Bool in
            state.waiting.append(job)
            defer { state.committing = true }
            return !state.committing
        }
        if start { queue.async { self.drain() } }
    }

    /// Commits groups until no one waits: whoever arrives during a commit joins the next group.
    private func drain() {
        while true {
            let group = state.withLock { state -> [Job] in
                let taken = Array(state.waiting.prefix(largestGroup))
                state.waiting.removeFirst(taken.count)
                if taken.isEmpty { state.committing = false }
                return taken
            }
            guard !group.isEmpty else { return }
            let outcomes = commit(group)
            counts.withLock { $0 = ($0.groups + 1, $0.callers + group.count, max($0.largest, group.count)) }
            for (job, outcome) in zip(group, outcomes) { job.finish(outcome) }
        }
    }

    private func commit(_ group: [Job]) -> [Error?] {
        if group.count == 1 { return [alone(group[0])] }
        var outcomes = [Error?](repeating: nil, count: group.count)
        do {
            try pool.write { db in
                for (index, job) in group.enumerated() {
                    try db.execute(sql: "SAVEPOINT caller")
                    do {
                        try job.work(db)
                    } catch {
                        // If even this fails, the transaction is gone: the whole group fails
                        // below and every caller runs alone.
                        try db.execute(sql: "ROLLBACK TO caller")
                        outcomes[index] = error
                    }
                    try db.execute(sql: "RELEASE caller")
                }
            }
            return outcomes
        } catch {
            return group.map(alone)
        }
    }

    private func alone(_ job: Job) -> Error? {
        do {
            try pool.write { db in try job.work(db) }
            return nil
        } catch {
            return error
        }
    }
}

import Dispatch
import Foundation
import GRDB
import RujukCore
import RujukStorage
import Testing

@Suite(.timeLimit(.minutes(5))) struct GroupCommitTests {
    /// StorageTests' scratch store: a durable file with a table `t` keyed by `id`.
    func scratch() throws -> DatabasePool { try StorageTests().scratch() }

    func ids(_ pool: DatabasePool) throws -> Set<String> {
        Set(try pool.read { try String.fetchAll($0, sql: "SELECT id FROM t") })
    }

    /// Holds the committer inside a first write until `callers` more are waiting, so they are
    /// certain to share the next transaction.
    func gathered(_ commit: GroupCommit, callers: Int, _ submit: @escaping @Sendable (Int) async -> Void) async throws {
        let release = DispatchSemaphore(value: 0)
        let started = Locked(false)
        async let first: Void = commit.write { db in
            try db.execute(sql: "INSERT INTO t (id) VALUES ('first')")
            started.withLock { $0 = true }
            release.wait()
        }
        try await waitFor("the first write holds the committer") { started.current }
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<callers { group.addTask { await submit(index) } }
            group.addTask {
                try? await waitFor("every caller is waiting") { commit.waiting == callers }
                release.signal()
            }
        }
        try await first
    }

    /// Twenty callers share one transaction; the one whose work throws gets its error and
    /// leaves nothing behind, and the other nineteen are committed.
    @Test func callersShareOneTransactionAndAFailureUndoesOnlyItsOwn() async throws {
        let pool = try scratch()
        let commit = GroupCommit(pool: pool, label: "test.group")
        let outcomes = Locked<[Int: String]>([:])
        try await gathered(commit, callers: 20) { index in
            do {
                let id = try await commit.write { db -> String in
                    try db.execute(sql: "INSERT INTO t (id) VALUES (?)", arguments: ["caller-\(index)"])
                    if index == 7 { throw RujukError(.duplicateConflict, "caller 7 refuses after its insert") }
                    return "caller-\(index)"
                }
                outcomes.withLock { $0[index] = id }
            } catch let error as RujukError {
                outcomes.withLock { $0[index] = "error: \(error.code.rawValue)" }
            } catch {
                outcomes.withLock { $0[index] = "unexpected: \(error)" }
            }
        }
        #expect(commit.totals.groups == 2, "the first write alone, then all twenty together")
        #expect(commit.totals.largest == 20)
        #expect(outcomes.current[7] == "error: duplicate_conflict")
        for index in 0..<20 where index != 7 { #expect(outcomes.current[index] == "caller-\(index)") }
        var expected = Set((0..<20).filter { $0 != 7 }.map { "caller-\($0)" })
        expected.insert("first")
        #expect(try ids(pool) == expected, "caller 7's insert was rolled back with its savepoint, no one else's")
    }

    /// When the shared transaction itself is lost (here a caller's work ends it), nothing of
    /// the group is committed, and each caller runs again alone: the others are committed and
    /// only the one that broke it fails.
    @Test func aLostTransactionRunsEachCallerAlone() async throws {
        let pool = try scratch()
        let commit = GroupCommit(pool: pool, label: "test.group")
        let failed = Locked<[Int]>([])
        try await gathered(commit, callers: 10) { index in
            do {
                try await commit.write { db in
                    try db.execute(sql: "INSERT INTO t (id) VALUES (?)", arguments: ["caller-\(index)"])
                    if index == 3 { try db.execute(sql: "ROLLBACK") }
                }
            } catch {
                failed.withLock { $0.append(index) }
            }
        }
        #expect(failed.current == [3])
        #expect(commit.totals.groups == 2 && commit.totals.largest == 10)
        var expected = Set((0..<10).filter { $0 != 3 }.map { "caller-\($0)" })
        expected.insert("first")
        #expect(try ids(pool) == expected)
    }

    /// A caller that is not async blocks until its write is committed, and sees the result.
    @Test func aBlockingCallerGetsItsResultOnceCommitted() throws {
        let pool = try scratch()
        let commit = GroupCommit(pool: pool, label: "test.group")
        let count = try commit.writeAndWait { db -> Int in
            try db.execute(sql: "INSERT INTO t (id) VALUES ('a')")
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t")!
        }
        #expect(count == 1)
        #expect(try ids(pool) == ["a"], "visible to a reader once the call returned")
        #expect(throws: RujukError.self) { try commit.writeAndWait { _ in throw RujukError(.notFound, "nothing") } }
    }
}

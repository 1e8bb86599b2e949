import Foundation
import Testing

/// What a `rujuk` child process did: its exit status and what it wrote.
struct RujukRun: Sendable {
    var status: Int32
    var out: String
    var err: String
}

/// Runs the `rujuk` executable with `arguments` in a child process, off the test's threads; a
/// run that takes longer than `timeout` is killed and fails the test.
func runRujuk(_ arguments: [String], timeout: TimeInterval = 120) async throws -> RujukRun {
    try await Thread.detachedResult {
        let process = Process()
        process.executableURL = BrokerProcess.binary
        process.arguments = arguments
        // Files, not pipes: a child that fills one pipe while we drain the other would hang.
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-cli-\(UUID().uuidString)")
        let outFile = base.appendingPathExtension("out"), errFile = base.appendingPathExtension("err")
        defer { try? FileManager.default.removeItem(at: outFile); try? FileManager.default.removeItem(at: errFile) }
        try #require(FileManager.default.createFile(atPath: outFile.path, contents: nil))
        try #require(FileManager.default.createFile(atPath: errFile.path, contents: nil))
        process.standardOutput = try FileHandle(forWritingTo: outFile)
        process.standardError = try FileHandle(forWritingTo: errFile)
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        if exited.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            Issue.record("rujuk \(arguments.first ?? "") ran longer than \(timeout)s and was killed")
        }
        return RujukRun(status: process.terminationStatus, out: try String(contentsOf: outFile, encoding: .utf8),
                        err: try String(contentsOf: errFile, encoding: .utf8))
    }.value()
}

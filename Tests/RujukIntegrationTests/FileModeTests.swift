import Foundation
import RujukCore
import RujukStorage
import Testing

/// Another local account must not read a ledger or a store: every data directory 0700, every
/// file in one 0600, whatever the umask of the process (the test process keeps its usual 022).
@Suite(.timeLimit(.minutes(5))) struct FileModeTests {
    /// Every directory and regular file under `root` with its permission bits.
    static func modes(under root: URL) throws -> [(path: String, directory: Bool, mode: mode_t)] {
        var found: [(String, Bool, mode_t)] = []
        func visit(_ path: String) throws {
            var status = stat()
            guard lstat(path, &status) == 0 else { return }
            let directory = status.st_mode & S_IFMT == S_IFDIR
            found.append((path, directory, status.st_mode & 0o7777))
            if directory {
                for entry in try FileManager.default.contentsOfDirectory(atPath: path) {
                    try visit((path as NSString).appendingPathComponent(entry))
                }
            }
        }
        try visit(root.path)
        return found
    }

    @Test func aNewStoreAndLedgerAreReadableByTheirAccountAlone() async throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        let sent = try police.refer(Network.request(name: "Siti Mode Berkas"))
        try await waitFor("the hospital has it") { try hospital.ledger.view(sent.id) != nil }

        let found = try Self.modes(under: network.directory)
        let files = found.filter { !$0.directory }.map(\.path)
        #expect(files.contains { $0.hasSuffix("broker/broker.sqlite-wal") }, "the WAL is there to check: \(files)")
        #expect(files.contains { $0.hasSuffix("rsud-embung-fatimah/ledger.sqlite-shm") }, "\(files)")
        for entry in found {
            let wanted: mode_t = entry.directory ? 0o700 : 0o600
            #expect(entry.mode == wanted, "\(entry.path) is \(String(entry.mode, radix: 8))")
        }
    }

    @Test func looseModesLeftByAnEarlierRunAreNarrowedAtStartAndLogged() async throws {
        let network = try Network()
        let hospital = try network.adapter("rsud-embung-fatimah")
        let ledger = hospital.ledger.url
        network.stopAdapter("rsud-embung-fatimah")
        let agencyDirectory = ledger.deletingLastPathComponent()
        // As a copy restored by hand, or a build from before this check, would leave them.
        #expect(chmod(agencyDirectory.path, 0o755) == 0 && chmod(ledger.path, 0o644) == 0)

        let log = CapturedLog()
        _ = try network.adapter("rsud-embung-fatimah", logger: log.logger())
        for entry in try Self.modes(under: agencyDirectory) {
            #expect(entry.mode == (entry.directory ? 0o700 : 0o600), "\(entry.path) is \(String(entry.mode, radix: 8))")
        }
        let narrowed = log.lines.filter { $0.metadata["security"] == "file_mode" }
        #expect(narrowed.count == 2 && narrowed.allSatisfy { $0.level == .warning }, "\(narrowed.map(\.message))")
        #expect(narrowed.contains { $0.metadata["path"] == ledger.path && $0.metadata["mode.was"] == "644" })
    }

    @Test func theDemoKeepsItsDataPrivateAndRemovesItOnCtrlC() async throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-demo-test-\(UUID().uuidString).out")
        try #require(FileManager.default.createFile(atPath: output.path, contents: nil))
        defer { try? FileManager.default.removeItem(at: output) }
        let process = Process()
        process.executableURL = BrokerProcess.binary
        process.arguments = ["demo", "--config", Network.root.appendingPathComponent("Config/rujuk.toml").path,
                             "--http-port", "0", "--monitor-port", "0"]
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        // The first line names the directory; line-buffered output makes it readable at once.
        var directory: URL?
        try await waitFor("the demo names its data directory", timeout: 60) {
            let text = try String(contentsOf: output, encoding: .utf8)
            guard let line = text.split(separator: "\n").first(where: { $0.contains("data in ") }) else { return false }
            let path = line.components(separatedBy: "data in ")[1].components(separatedBy: ";")[0]
            directory = URL(fileURLWithPath: path)
            return true
        }
        let data = try #require(directory)
        // Mid-scenario: the first referral has been committed, so ledgers hold a person.
        try await waitFor("the scenario is under way", timeout: 60) {
            try String(contentsOf: output, encoding: .utf8).contains("committed at the broker")
        }
        for entry in try Self.modes(under: data) {
            #expect(entry.mode == (entry.directory ? 0o700 : 0o600), "\(entry.path) is \(String(entry.mode, radix: 8))")
        }
        kill(process.processIdentifier, SIGINT)
        try await waitFor("the demo exits on Ctrl-C", timeout: 30) { !process.isRunning }
        #expect(!FileManager.default.fileExists(atPath: data.path), "the demo's data is gone")
    }
}

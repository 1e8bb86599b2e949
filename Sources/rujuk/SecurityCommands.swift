import ArgumentParser
import Foundation
import GRDB
import RujukAdapter
import RujukBroker
import RujukCore
import RujukStorage

/// `rujuk keygen`: a key pair for an agency or for the broker.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make the keys of an agency (CurveZMQ and sealing) or of the broker (CurveZMQ and checkpoint signing).",
        discussion: """
            The secret file is created with mode 0600 and never overwritten. The public halves \
            are printed: an agency's go into its [[agency]] entry in agencies.toml (curve_key, \
            seal_key), the broker's into [adapter] broker_key and broker_sign_key of every \
            adapter's rujuk.toml. By default the file goes where the configuration looks for it: \
            <adapter data_dir>/<agency>/agency.key, or <broker data_dir>/broker.key. \
            --add-sign-key gives an existing broker key file the checkpoint signing key it \
            lacks, keeping its CurveZMQ key (adapters keep their broker_key); restart the broker \
            afterwards.
            """)

    @Option(help: "The agency the keys are for (an id from agencies.toml).") var agency: String?
    @Flag(help: "Make the broker's keys instead.") var broker = false
    @Flag(name: .customLong("add-sign-key"), help: "With --broker: add a checkpoint signing key to the existing broker key file.")
    var addSignKey = false
    @Option(help: "Where to write the secret key file (default: where the configuration reads it).") var out: String?
    @OptionGroup var options: ConfigOptions

    func run() throws {
        guard (agency != nil) != broker else { throw ValidationError("give exactly one of --agency ID or --broker") }
        guard !addSignKey || broker else { throw ValidationError("--add-sign-key goes with --broker") }
        let target: URL
        let keys: KeyFile
        if let agency {
            guard ReferralValidation.isAgencyID(agency) else { throw ValidationError("--agency is not an agency id") }
            if let out {
                target = URL(fileURLWithPath: out)
            } else {
                let config = try options.load()
                target = try AdapterConfiguration.parse(config.adapterTable, agency: agency, relativeTo: config.baseDirectory).resolvedKeyFile
            }
            keys = try KeyFile.generate(owner: agency, sealing: true)
        } else {
            target = try out.map { URL(fileURLWithPath: $0) } ?? options.load().broker.resolvedKeyFile
            if addSignKey { return try addSigningKey(to: target) }
            keys = try KeyFile.generate(owner: "broker", sealing: false, signing: true)
        }
        try PrivateFiles.makeDirectory(target.deletingLastPathComponent())
        do {
            try keys.write(to: target)
        } catch let error as ConfigError {
            throw CLIError("cannot write the key file: \(error)")
        }
        print("secret key written to \(target.path) (mode 0600)")
        if let agency {
            print("add to the [[agency]] entry of \(agency) in agencies.toml, on the broker and every adapter:")
            print("curve_key = \"\(keys.curvePublic)\"")
            print("seal_key = \"\(keys.sealPublic!)\"")
        } else {
            print("add to the [adapter] table of every adapter's rujuk.toml:")
            print("broker_key = \"\(keys.curvePublic)\"")
            print("broker_sign_key = \"\(keys.signPublic!)\"")
        }
    }

    private func addSigningKey(to target: URL) throws {
        var keys: KeyFile
        do {
            keys = try KeyFile.load(target, owner: "broker")
        } catch let error as ConfigError {
            throw CLIError("cannot read the broker key file: \(error)")
        }
        guard keys.signSecret == nil else { throw CLIError("\(target.path) already has a sign key") }
        keys.addSigningKey()
        do {
            try keys.replace(at: target)
        } catch let error as ConfigError {
            throw CLIError("cannot write the key file: \(error)")
        }
        print("sign key added to \(target.path) (mode 0600); restart the broker to use it")
        print("add to the [adapter] table of every adapter's rujuk.toml:")
        print("broker_sign_key = \"\(keys.signPublic!)\"")
    }
}

/// `rujuk audit`: the broker's audit log and the checkpoints that hold it to its past.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Check the broker's audit log.",
        subcommands: [AuditVerifyCommand.self, AuditCheckpointsCommand.self])
}

struct AuditVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify the hash chain of every handoff event the broker recorded.",
        discussion: """
            Reports the first record that was edited, deleted or moved, and exits 1; or the \
            number of records and the chain's head, and exits 0. Whoever can write the store \
            can also recompute every hash after a record they edit, or delete the newest \
            records: --checkpoints holds the log to the checkpoints the broker signed, as an \
            adapter kept them (`rujuk audit checkpoints`). Each checkpoint's signature is \
            checked with the broker's sign key (--sign-key, or sign_public of the broker's key \
            file); then the record it names must be there with the hash it names. A rewritten \
            or cut back history, or a checkpoint the key did not sign, exits 1. Reads the \
            store only; safe while the broker runs.
            """)

    @Option(help: "The broker's store (default: <[broker] data_dir>/broker.sqlite).") var store: String?
    @Option(help: "Checkpoints to hold the log to: JSON lines, as `rujuk audit checkpoints` writes them.") var checkpoints: String?
    @Option(name: .customLong("sign-key"), help: "The broker's sign key, base64 (default: sign_public of the broker's key file).")
    var signKey: String?
    @OptionGroup var options: ConfigOptions

    func run() throws {
        let url = try store.map { URL(fileURLWithPath: $0) } ?? options.load().broker.dataDirectory.appendingPathComponent("broker.sqlite")
        guard FileManager.default.fileExists(atPath: url.path) else { throw CLIError("no broker store at \(url.path)") }
        // Read before the store, so a wrong file or key is said before a long walk.
        let held = try checkpoints.map { try readCheckpoints(URL(fileURLWithPath: $0)) }
        var configuration = Configuration()
        configuration.readonly = true
        // The running broker may hold the file for a checkpoint for a moment.
        configuration.busyMode = .timeout(10)
        let queue = try DatabaseQueue(path: url.path, configuration: configuration)
        let report = try queue.read(AuditChain.verify)
        print(report.description)
        var failed = report.problem != nil
        if let held {
            for line in held.unsigned { print("checkpoint on line \(line) REFUSED: not signed by the broker's sign key") }
            let matched = try queue.read { try AuditChain.check($0, against: held.signed) }
            print(matched.description)
            failed = failed || !held.unsigned.isEmpty || matched.problem != nil
        }
        if failed { throw ExitCode(1) }
    }

    /// The file's checkpoints whose signature verifies, and the line numbers of those whose
    /// signature does not.
    private func readCheckpoints(_ file: URL) throws -> (signed: [Checkpoint], unsigned: [Int]) {
        let key = try signKey ?? brokerSignKey()
        guard KeyText.isBase64Key(key) else { throw ValidationError("--sign-key must be 32 bytes in base64") }
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { throw CLIError("cannot read \(file.path)") }
        var signed: [Checkpoint] = [], unsigned: [Int] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            let checkpoint: Checkpoint
            do {
                checkpoint = try JSONCoding.decode(Checkpoint.self, from: Array(line.utf8), what: "line \(index + 1)")
                try checkpoint.validate()
            } catch let error as RujukError {
                throw CLIError("\(file.path): \(error.reason)")
            }
            if checkpoint.isSigned(by: key) { signed.append(checkpoint) } else { unsigned.append(index + 1) }
        }
        guard !signed.isEmpty || !unsigned.isEmpty else { throw CLIError("\(file.path) holds no checkpoints") }
        return (signed, unsigned)
    }

    private func brokerSignKey() throws -> String {
        let file = try options.load().broker.resolvedKeyFile
        let keys: KeyFile
        do {
            keys = try KeyFile.load(file, owner: "broker")
        } catch let error as ConfigError {
            throw CLIError("cannot read the broker's sign key (or give --sign-key): \(error)")
        }
        guard let key = keys.signPublic else { throw CLIError("\(file.path) has no sign key; give --sign-key") }
        return key
    }
}

/// `rujuk audit checkpoints`: the checkpoints an adapter kept, for `audit verify --checkpoints`.
struct AuditCheckpointsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoints",
        abstract: "Print the broker's audit checkpoints an agency's adapter kept, as JSON lines.",
        discussion: """
            One checkpoint per line, oldest first, as the broker signed it: {"at", "head", \
            "records", "signature"}. Save the output and give it to `rujuk audit verify \
            --checkpoints` on the broker's side: any agency's copy can show that the broker's \
            log was rewritten since. Reads the ledger only; safe while the adapter runs.
            """)

    @Option(help: "The agency whose adapter kept the checkpoints.") var agency: String
    @OptionGroup var options: ConfigOptions

    func run() throws {
        let config = try options.load()
        guard config.registry[agency] != nil else { throw ValidationError("agency '\(agency)' is not in the registry") }
        let adapter = try AdapterConfiguration.parse(config.adapterTable, agency: agency, relativeTo: config.baseDirectory)
        let url = adapter.agencyDirectory.appendingPathComponent("ledger.sqlite")
        guard FileManager.default.fileExists(atPath: url.path) else { throw CLIError("no ledger for \(agency) at \(url.path)") }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)
        let queue = try DatabaseQueue(path: url.path, configuration: configuration)
        let hasTable = try queue.read { try $0.tableExists("checkpoint") }
        guard hasTable else { throw CLIError("the ledger keeps no checkpoints yet: start the adapter once to bring it up to date") }
        for checkpoint in try queue.read(Ledger.checkpoints) {
            print(String(decoding: JSONCoding.encode(checkpoint), as: UTF8.self))
        }
    }
}

/// `rujuk purge`: removes the personal data of old closed handoffs from an adapter's ledger.
struct PurgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Remove the personal data of closed handoffs from an agency's ledger, keeping the envelope.",
        discussion: """
            UU PDP: personal data is deleted once its purpose is met or its retention period \
            ends. This removes the person, the consent record and the notes (the ledger's own \
            copy and the one sealed for the recipient) of every handoff declined, completed, \
            cancelled or refused longer ago than the period, and keeps ids, agencies, service, \
            status, deadlines and history for the statistics. The default period is [adapter] \
            retention (730d). A handoff that never closes loses its personal data once it is \
            [adapter] open_retention old (365d), its agency system told [adapter] \
            retention_notice (30d) before (handoff.retention_notice). It reads the agency's key \
            file, which the ledger's personal data is sealed under, as the adapter does. Safe \
            while the adapter runs; run it daily from cron or a systemd timer.
            """)

    @Option(help: "The agency whose ledger to purge.") var agency: String
    @Option(name: .customLong("older-than"), help: "Purge handoffs closed longer ago than this (e.g. 90d, 2y is 730d).") var olderThan: String?
    @OptionGroup var options: ConfigOptions

    func run() throws {
        let config = try options.load()
        guard config.registry[agency] != nil else { throw ValidationError("agency '\(agency)' is not in the registry") }
        let adapter = try AdapterConfiguration.parse(config.adapterTable, agency: agency, relativeTo: config.baseDirectory)
        var period = adapter.retention
        if let olderThan {
            guard let parsed = RujukCore.Duration.parse(olderThan), parsed > 0 else {
                throw ValidationError("--older-than '\(olderThan)' is not a duration (e.g. 90d, 12h)")
            }
            period = parsed
        }
        guard FileManager.default.fileExists(atPath: adapter.agencyDirectory.appendingPathComponent("ledger.sqlite").path) else {
            throw CLIError("no ledger for \(agency) in \(adapter.agencyDirectory.path)")
        }
        // The agency's key: the ledger keeps its personal data sealed under it, and seals at
        // its first open by this build what an older one kept in the clear.
        let sealer = try Sealer(agency: agency, keys: adapter.loadKeys(), registry: config.registry)
        let ledger = try Ledger(directory: adapter.agencyDirectory, agency: agency, durability: adapter.durability, clock: SystemClock(),
                                registry: config.registry, sealer: sealer)
        let result = try ledger.purge(closedBefore: Date() - period)
        print("purged the personal data of \(result.purged) handoff(s) closed before \(Timestamp.format(result.closedBefore)) from \(ledger.url.path)")
        let open = try ledger.expireOpen(createdBefore: Date() - adapter.openRetention, notice: adapter.retentionNotice)
        print("open handoffs created before \(Timestamp.format(open.createdBefore)): \(open.noticed) announced for removal, personal data of \(open.purged) removed")
    }
}

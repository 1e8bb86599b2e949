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
        abstract: "Make a key pair for an agency (CurveZMQ and sealing) or for the broker (CurveZMQ).",
        discussion: """
            The secret file is created with mode 0600 and never overwritten. The public halves \
            are printed: an agency's go into its [[agency]] entry in agencies.toml (curve_key, \
            seal_key), the broker's into [adapter] broker_key of every adapter's rujuk.toml. \
            By default the file goes where the configuration looks for it: \
            <adapter data_dir>/<agency>/agency.key, or <broker data_dir>/broker.key.
            """)

    @Option(help: "The agency the keys are for (an id from agencies.toml).") var agency: String?
    @Flag(help: "Make the broker's key instead.") var broker = false
    @Option(help: "Where to write the secret key file (default: where the configuration reads it).") var out: String?
    @OptionGroup var options: ConfigOptions

    func run() throws {
        guard (agency != nil) != broker else { throw ValidationError("give exactly one of --agency ID or --broker") }
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
            keys = try KeyFile.generate(owner: "broker", sealing: false)
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
        }
    }
}

/// `rujuk audit verify`: walks the broker's hash-chained audit log.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Check the broker's audit log.",
        subcommands: [AuditVerifyCommand.self])
}

struct AuditVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify the hash chain of every handoff event the broker recorded.",
        discussion: """
            Reports the first record that was edited, deleted or moved, and exits 1; or the \
            number of records and the chain's head, and exits 0. Deleting the newest records \
            leaves no trace in the chain itself: compare the head with one recorded earlier \
            (the broker logs it at start and stop, and /health reports it). Reads the store \
            only; safe while the broker runs.
            """)

    @Option(help: "The broker's store (default: <[broker] data_dir>/broker.sqlite).") var store: String?
    @OptionGroup var options: ConfigOptions

    func run() throws {
        let url = try store.map { URL(fileURLWithPath: $0) } ?? options.load().broker.dataDirectory.appendingPathComponent("broker.sqlite")
        guard FileManager.default.fileExists(atPath: url.path) else { throw CLIError("no broker store at \(url.path)") }
        var configuration = Configuration()
        configuration.readonly = true
        // The running broker may hold the file for a checkpoint for a moment.
        configuration.busyMode = .timeout(10)
        let queue = try DatabaseQueue(path: url.path, configuration: configuration)
        let report = try queue.read(AuditChain.verify)
        print(report.description)
        if report.problem != nil { throw ExitCode(1) }
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
            retention (730d). It reads the agency's key file, which the ledger's personal data \
            is sealed under, as the adapter does. Safe while the adapter runs; run it daily \
            from cron or a systemd timer.
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
    }
}

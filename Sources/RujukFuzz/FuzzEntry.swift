import Foundation

#if RUJUK_LIBFUZZER
/// libFuzzer's entry point. Built by `make fuzz` with `-sanitize=fuzzer -DRUJUK_LIBFUZZER`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    DecoderProbe.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

/// libFuzzer's driver, declared as the C function it is (`-enable-experimental-feature Extern`).
@_extern(c, "LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM links an executable's `main` to `<module>_main`, so the module must define that
/// symbol, which keeps libFuzzer's own `main` out: hand over to its driver.
@_cdecl("RujukFuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput)
}
#else
/// Without libFuzzer (a plain `swift build`), the same probe replays inputs: each argument is
/// a file or a directory of files, e.g. a crash artifact or `Fuzz/corpus`.
@main
struct FuzzReplay {
    static func main() throws {
        let paths = CommandLine.arguments.dropFirst()
        guard !paths.isEmpty else {
            print("usage: RujukFuzz FILE|DIRECTORY...  (replays fuzz inputs through the RRP decoder)")
            return
        }
        var count = 0
        for path in paths {
            let url = URL(fileURLWithPath: path)
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            let files = isDirectory.boolValue
                ? try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil).sorted { $0.path < $1.path }
                : [url]
            for file in files {
                DecoderProbe.run(Array(try Data(contentsOf: file)))
                count += 1
            }
        }
        print("\(count) inputs: each decoded or was refused with a codec error")
    }
}
#endif

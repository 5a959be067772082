import Foundation

// Two builds of one target. `scripts/fuzz.sh` builds it with `-sanitize=fuzzer,address -DFUZZING`:
// libFuzzer then supplies `main` and calls `LLVMFuzzerTestOneInput`, the target chosen by
// LOWRANK_FUZZ_TARGET. The ordinary build has its own `main`, which runs files through a target once
// (`lowrank-fuzz TARGET FILE...`): the committed corpora and every crash found become regression
// inputs that the test suite replays without sanitizers.

/// The target of this fuzzing process (LOWRANK_FUZZ_TARGET, read once).
let fuzzTarget: FuzzTarget? = ProcessInfo.processInfo.environment["LOWRANK_FUZZ_TARGET"].flatMap(FuzzTarget.init(rawValue:))

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let fuzzTarget else {
        FileHandle.standardError.write(Data("set LOWRANK_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    fuzzTarget.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if FUZZING
/// libFuzzer's driver (in the fuzzer runtime `-sanitize=fuzzer` links).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32) -> Int32

/// SwiftPM links an executable's entry point as `<Target>_main` and points `main` at it, so the
/// fuzzer's own `main` is not used: this one hands the command line to libFuzzer's driver.
@_cdecl("LowRankFuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzOneInput(data, size) }
}
#else
@main
struct ReplayCorpus {
    static func main() {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name), arguments.count >= 2 else {
            FileHandle.standardError.write(Data("usage: lowrank-fuzz TARGET FILE... (targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))\n".utf8))
            exit(2)
        }
        var count = 0
        for path in arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                FileHandle.standardError.write(Data("cannot read \(path)\n".utf8))
                exit(1)
            }
            data.withUnsafeBytes { target.run($0) }
            count += 1
        }
        print("\(target.rawValue): \(count) input(s) parsed or rejected without a crash")
    }
}
#endif

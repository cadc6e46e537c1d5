import ArgumentParser
import Kernels

/// The `policyprune` command line: parses, prints and calls the library; no math here.
@main
struct PolicyPrune: ParsableCommand {
    static let version = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "policyprune",
        abstract: "Structural pruning of LLaMA-family language models by policy gradient, on the CPU.",
        version: version,
        subcommands: [Info.self, Eval.self, Generate.self, Tokenize.self, Bench.self, Export.self, Prune.self, Score.self, Plan.self])

    /// Sets the process-wide allocator policy, then parses and runs the command.
    static func main() {
        AllocatorPolicy.keepFreedMemory()
        main(nil)
    }
}

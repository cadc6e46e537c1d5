# The two test tiers, named once (sourced by scripts/test-fast.sh and scripts/test-smollm2.sh).
# SMOLLM2_TIER: the test classes that load the SmolLM2-135M model (GGUF or its exports) or run long end-to-end
# comparisons; everything else — synthetic models, stories260K, tokenizer and data fixtures — is the fast tier.
# A new test class is in the fast tier unless it is added here.
SMOLLM2_TIER='CLITests\.|BadInputTests|GGUFSmolLM2Tests|PerplexityTests|TokenizedDataTests|AlignedExportTests|GGUFToHuggingFaceTests|HuggingFaceReferenceTests|RoundTripTests|WriterTests|Int8ForwardTests|HardMaskFromScoresTests|WandaSPFixtureTests|HuggingFaceTokenizerExportTests|SmolLM2TokenizerTests|ForwardGoldenTests|MaskedForwardTests|ZeroShotCLITests|ZeroShotModelTests|PaperMethodWinsTests'

# Runs `swift "$@"` with a private TMPDIR removed afterwards: every Swift driver invocation (swift build, swift test)
# leaves a `TemporaryDirectory.*` folder holding `.keep-directory` in $TMPDIR (swift-driver's ArgsResolver keeps it
# on purpose), about five per `swift test`; the tests' own scratch folders land there too.
swift_in_private_tmp() {
    local scratch status
    scratch="$(mktemp -d "${TMPDIR:-/tmp}/policyprune-tests.XXXXXX")"
    status=0
    TMPDIR="$scratch" swift "$@" || status=$?
    rm -rf "$scratch"
    return "$status"
}

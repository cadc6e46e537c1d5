import Foundation
import ArgumentParser

/// Reads a comma-separated option value (`--tasks piqa,boolq`, `--dtypes f32,q8_0`) into its elements once, as the
/// argument parser's `transform`, so the command holds typed values and nothing re-parses the string: each name
/// (spaces around it trimmed) through `element`, whose error names it, in the order given, repeats dropped.
func commaSeparated<Element: Equatable>(_ text: String, _ element: (String) throws -> Element) throws -> [Element] {
    var result: [Element] = []
    for name in text.split(separator: ",", omittingEmptySubsequences: false) {
        let value = try element(name.trimmingCharacters(in: .whitespaces))
        if !result.contains(value) { result.append(value) }
    }
    return result
}

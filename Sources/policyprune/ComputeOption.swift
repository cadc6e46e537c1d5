import ArgumentParser
import Transformer

/// `--compute f32|int8` on any command that runs sampled forwards.
extension ComputePrecision: ExpressibleByArgument {}

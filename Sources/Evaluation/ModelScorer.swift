import Transformer

/// The forward pass scores windows for perplexity (a prepared, possibly masked, model).
extension PreparedModel: LanguageModelScorer {}

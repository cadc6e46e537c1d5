// Tokenization module: see design.md §3.

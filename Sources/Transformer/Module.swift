// Transformer module: see design.md §3.

// Evaluation module: see design.md §3.

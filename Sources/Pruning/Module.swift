// Pruning module: see design.md §3.

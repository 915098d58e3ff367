"""Framework-free algorithms of the core tasks (PCA)."""

"""Framework-free algorithms behind the paper's tasks: the vectorised perceptron, the LP separability check and its worker pool, search spaces."""

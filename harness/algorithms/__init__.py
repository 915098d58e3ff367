"""Algorithms the tasks run, free of any framework: PCA, the perceptron, the LP separability check, search spaces."""

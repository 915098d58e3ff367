"""The paper: content that reproduces one deep-learning report on MNIST and Fashion-MNIST.

This package is registered with the harness core through the ``harness.content`` entry point
(``pyproject.toml``); the core never imports it. It brings the tasks that only this report needs
(the perceptron on digit pairs with its separability verdicts, multi-task learning, filter and
feature-map visualisation, hyperparameter search) and the algorithms behind them. The suites that
use them, and the study that runs the whole report, are the TOML files in ``suites/``.

A second body of content is added the same way: a package with a ``TASKS`` mapping, named in an
entry point of the ``harness.content`` group.
"""

#: Task name -> the module holding its ``TASK`` (imported only when a suite uses it).
TASKS = {
    "perceptron": "harness.paper.tasks.perceptron",
    "search": "harness.paper.tasks.search",
    "visualize": "harness.paper.tasks.visualize",
    "mtl": "harness.paper.tasks.mtl",
}

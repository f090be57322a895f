"""Course tooling, kept apart from the teaching modules: the classroom app, slides, benchmarks,
figures, the environment check, the notebook registry and the offline-model builder.

Nothing here is needed to follow a notebook; each tool is a ``python -m`` entry point or a helper
of the tests.
"""

"""jaxpool's examples: run each as a module from the repository root,
``python -m examples.train``, ``python -m examples.reproduce``, ..."""

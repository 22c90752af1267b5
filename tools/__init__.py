"""Command-line tools (train, eval, benches), each importable with ``main(argv=None)``."""

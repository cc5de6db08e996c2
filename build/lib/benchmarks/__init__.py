"""The benchmark runner, its shared training engine, evaluation and tables."""

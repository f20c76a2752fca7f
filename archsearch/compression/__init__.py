"""Compression search (the Minitron route): score every prunable axis of a trained parent from activations
(`importance`), slice a narrower and shallower child from it (`prune`), and search the child's widths and depth as
an Optuna study ranked by a short distillation from the parent (`search`).

Layering: at the studies' level; imports builder, training, checks and studies, and loads torch only inside the
modules that need it (`compression.file` and `compression.space` are torch-free)."""

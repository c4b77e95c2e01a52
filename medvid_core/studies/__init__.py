"""One room per study: cohort presets, table runners, the paper's published numbers and side-by-side tables.

These are the only modules that name a study; the generic core (io, synth, data, sampling, transforms,
models, train, metrics, explain, plots, runner) never imports from here.
"""

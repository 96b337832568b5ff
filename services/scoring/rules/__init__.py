"""One evaluator per rule family. Each answers "does this fire at time t, and why" from a
location's `Timeline` in O(log n), and the model composes them (`services/scoring/engine.py`).

A new rule family is one new module here, one entry in `engine.evaluators` and one test
module.
"""

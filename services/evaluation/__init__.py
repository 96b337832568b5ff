"""`caresignal evaluate`: detection quality of a policy, measured against the simulator's
ground truth and a count-only baseline."""

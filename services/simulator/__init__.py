"""`caresignal simulate`: a synthetic population of English adult social care, its event
stream with planted failure trajectories, and the ground truth to judge detection by.

The simulator describes the world, never the policy: nothing here reads the policy file or
imports the scoring code, so an evaluation built on it cannot be circular.
"""

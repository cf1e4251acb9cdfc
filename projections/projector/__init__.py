"""The projector: the live subscription loop of each projection and its parts.

``runner`` is the loop (batch, fold, commit, checkpoint, notify); ``supervisor``
runs several projections in one process. The parts: ``batches`` and ``feed``
(collecting subscription items), ``reader`` (a long catch-up read in a child
process), ``cache`` (entity states kept between batches), ``fold`` (a batch
folded in memory), ``lease`` (fencing), ``parking`` (bad events), ``requests`` (an operator's
resync, a job's flip), ``status`` (status hash and heartbeat), ``notices``
(change notices after commit) and ``lag`` (lag samples for the console's chart).
"""

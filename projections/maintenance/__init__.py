"""Operations on the read models beside the live projector: what jobs run.

``control`` is what a job's engine is given (progress reports and a cancel check);
``user_rebuild`` rebuilds one user's read models in every projection, fenced against
the live projector (DESIGN.md invariants 6 and 12).
"""

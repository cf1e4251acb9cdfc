"""Every drill of the suite, in the order ``make drills`` runs them: first the faults the product healed before
issue 21, then its findings. ``fault`` is what the JSON line says was done; ``env`` product settings a drill's stack
runs with (only to stretch a rebuild of the small store over the moment its fault needs)."""
from __future__ import annotations

from tests.drills import faults_data, faults_generations, faults_members, faults_processes, faults_services
from tests.drills.drill import Drill
from tests.drills.topology import CLUSTER, ONE, SENTINEL

SLOW_REBUILD = {"LUCENT_BATCH_SIZE": "1"}  # a rebuild of the template's store then takes seconds, not one

DRILLS: tuple[Drill, ...] = (
    Drill("projector-kill9", "kill -9 of the projector mid-commit (while it commits a burst of 3,000 events batch after "
          "batch, under a live market), then started again", faults_processes.projector_kill9, market=True),
    Drill("worker-kill9-rebuild", "kill -9 of the Celery worker running a rebuild (all its processes) mid-rebuild, then "
          "started again; the orphan sweep queues the job again (the stack commits a batch per event, "
          "LUCENT_BATCH_SIZE=1, so the kill lands mid-fold even on the small store)",
          faults_processes.worker_kill9_rebuild, market=True, env=SLOW_REBUILD),
    Drill("redis-oom", "Redis out of memory for 30 s under a live market (maxmemory just above what it used, policy "
          "noeviction), then its limit restored", faults_services.redis_oom, market=True, topologies=(ONE,)),
    Drill("redis-kill9-aof", "Redis killed with -9 under a live market, then started again from its append-only file "
          "(make run's: fsync every second)", faults_services.redis_kill9_aof, market=True, topologies=(ONE,)),
    Drill("eventstore-down", "the event store killed and kept down for 30 s under a live market (the simulator "
          "retrying its appends), then started again on its file", faults_services.eventstore_down, market=True),
    Drill("redis-failover", "a Redis failover to a replica with writes lost in the window: the replica cut off from the "
          "primary while the projector committed 60 more events, the stack stopped, the primary killed, the replica "
          "promoted (REPLICAOF NO ONE) and the stack started again on it", faults_services.redis_failover, market=True,
          heal_timeout_s=90.0, topologies=(ONE,)),
    Drill("sentinel-failover", "the stack on a Sentinel-managed Redis (a replica, three Sentinels, every process on "
          "redis+sentinel://), then the primary killed with -9 under a live market: the Sentinels promote the replica and "
          "every process follows by itself", faults_services.sentinel_failover, market=True, heal_timeout_s=90.0, topologies=(ONE, SENTINEL)),
    Drill("cluster-primary-kill", "the stack on a Redis Cluster (three primaries, three replicas, every process on "
          "redis+cluster://, Celery and Channels on a Redis of their own), then the primary holding the most partitions "
          "killed with -9 under a live market: the cluster promotes its replica and every process follows by itself",
          faults_services.cluster_primary_kill, market=True, heal_timeout_s=90.0, topologies=(ONE, CLUSTER)),
    Drill("job-lease-deleted", "the lease of a running rebuild job deleted from Redis mid-rebuild (a failover or a "
          "pause longer than the lease); the orphan sweep queues the job again while the first run still folds (the "
          "stack commits a batch per event, LUCENT_BATCH_SIZE=1, so a rebuild of the small store outlasts the sweep)",
          faults_processes.job_lease_deleted, market=True, env=SLOW_REBUILD),
    Drill("projector-sigstop-flip", "SIGSTOP of the projector across a rebuild's flip: stopped until its heartbeat "
          "expired, the rebuild started then, SIGCONT once the flip was under way and 7 s had passed",
          faults_processes.projector_sigstop_flip, market=True),
    Drill("import-stream-repair", "a TradeExecuted for user U appended to the import stream trades-import-1 and applied "
          "live, then `manage.py consistency --user U --repair`", faults_data.import_stream_repair),
    Drill("two-rebuilds-rollback", "two full rebuilds of portfolio one after the other, then a rollback, under a live "
          "market (`manage.py rebuild portfolio --yes --wait` twice, `manage.py rollback portfolio --yes --wait`)",
          faults_generations.two_rebuilds_rollback, market=True),
    Drill("kept-generation-evicted-rollback", "a full rebuild of portfolio, then keys of one user deleted from the "
          "generation kept for rollback (an LRU eviction: its positions and history, not its main hash), then "
          "`manage.py rollback portfolio --yes --wait`, under a live market",
          faults_generations.kept_generation_evicted_rollback, market=True),
    Drill("portfolio-keys-deleted", "every portfolio:* hash of the live generation deleted (eviction, a lossy failover) "
          "while the checkpoint survives, under a live market; healed by itself", faults_data.portfolio_keys_deleted,
          market=True),
    Drill("member-kill9", "two projector members (two run_projector processes) splitting the projections; the one "
          "owning portfolio killed with -9 while portfolio commits a burst of 3,000 events; the other owns everything "
          "once the leases expire; the killed one started again", faults_members.member_kill9, market=True),
    Drill("member-sigstop", "two projector members; the one owning portfolio stopped (SIGSTOP) for longer than its "
          "leases during a burst (a zombie owner), the other taking over, then continued (SIGCONT)",
          faults_members.member_sigstop, market=True),
    Drill("member-join", "one projector member owning everything while a burst of 3,000 events is committed; a second "
          "member started mid-burst takes its share (two projections move)", faults_members.member_join, market=True),
    Drill("ranking-score-check-all", "one user's score in portfolio-values set to 1 by hand, then `manage.py "
          "consistency --all` and the repair or rebuild it offers", faults_data.ranking_score_check_all),
)

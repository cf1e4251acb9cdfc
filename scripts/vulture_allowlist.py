"""Names vulture cannot see used: read by Django settings (not scanned), templates, or set on gRPC messages."""
# ruff: noqa: B018
from eventstore_lite import append
from lucent_admin import config, embedded
from projections import keys, queries

# lucent_admin/settings.py and settings_test.py build the settings from these
config.env_bool, config.env_int, config.env_list, config.all_services_default, config.database, config.secret_key
config.proxy_ssl_header
# named in settings.AUTHENTICATION_BACKENDS
from lucent_admin.operations import signin  # noqa: E402

signin.ThrottleBackend
embedded.start_private_redis
keys.CELERY_PREFIX
# read by the console's templates
queries.HistoryEntry.amount_after, queries.UserRank.risk_rank, queries.ProjectionStatus.throughput
# fields of esdbclient's protobuf messages, set by the embedded store's append handler
_ = append
_.current_revision, _.current_revision_20_6_0, _.expected_revision, _.expected_revision_20_6_0
_.current_stream_revision, _.expected_stream_position
# job fields the console's templates and the jobs command show
from lucent_admin.operations import models  # noqa: E402

models.Job.eta_seconds, models.Job.created_at, models.Job.finished_at
# the rebuild job's result (shown on the job page)
from projections.maintenance import generations  # noqa: E402

generations.SwitchResult.differences
# the number formats, registered as template filters
from lucent_admin.console.templatetags import numbers  # noqa: E402

numbers.money, numbers.price, numbers.amount, numbers.change, numbers.percent, numbers.count, numbers.score
numbers.seconds, numbers.rate
# shown by the Settings page and the overview's Recovery widget
models.ThresholdValue.updated_by, models.RecoveryState.escalated_at
# a Redis server's figures, shown by the Infrastructure page
from projections import redis_nodes  # noqa: E402

redis_nodes.RedisNode.ops_per_sec, redis_nodes.RedisNode.lag_s

from django.urls import path

from lucent_admin.console import actions, views

app_name = "console"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("leaderboards/", views.leaderboards, name="leaderboards"),
    path("leaderboards/rank/", actions.user_rank, name="user-rank"),
    path("risk/", views.risk, name="risk"),
    path("risk/acknowledge/", actions.acknowledge_alert, name="acknowledge"),
    path("market/", views.market, name="market"),
    path("user/", views.user, name="user"),
    path("projections/", views.projections, name="projections"),
    path("projections/retry/", actions.retry_parked, name="retry-parked"),
    path("projections/park/", actions.park_bad_event, name="park-bad-event"),
    path("projections/resync/", actions.resync, name="resync"),
    path("projections/<slug:projection>/rebuild/", views.rebuild, name="rebuild"),
    path("projections/<slug:projection>/rollback/", actions.rollback, name="rollback"),
    path("projections/<slug:projection>/generations/<int:generation>/drop/", actions.drop_generation,
         name="drop-generation"),
    path("user/rebuild/", actions.rebuild_user, name="rebuild-user"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/<int:job_id>/", views.job, name="job"),
    path("jobs/<int:job_id>/cancel/", actions.cancel_job, name="job-cancel"),
    path("jobs/<int:job_id>/approve/", actions.approve_job, name="job-approve"),
    path("jobs/<int:job_id>/flip-anyway/", actions.flip_anyway, name="job-flip-anyway"),
    path("jobs/<int:job_id>/repair/", actions.repair, name="job-repair"),
    path("consistency/", views.consistency, name="consistency"),
    path("consistency/check/", actions.check_consistency, name="check-consistency"),
    path("infrastructure/", views.infrastructure, name="infrastructure"),
    path("shards/", views.shards, name="shards"),
    path("settings/", views.thresholds, name="settings"),
    path("recovery/dismiss/", actions.dismiss_recovery_alert, name="recovery-dismiss"),
    path("audit/", views.audit, name="audit"),
]

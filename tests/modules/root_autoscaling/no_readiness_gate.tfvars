# The lifecycle tests apply on the stand-in provider: no endpoint answers here, so the
# readiness gate (tools/wait_ready.py) is off for them; the plan cases keep it.
wait_for_ready = false

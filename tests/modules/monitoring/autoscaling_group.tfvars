# The autoscaling mode: no single instance, the group's name (known at plan).
instance_id            = null
autoscaling_group_name = "llm-dev"

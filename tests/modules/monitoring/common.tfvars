# What every modules/monitoring case passes; each <case>.tfvars adds or overrides (the root
# module's defaults unless a case says otherwise).
name        = "llm-dev"
region      = "us-east-1"
account_id  = "123456789012"
partition   = "aws"
instance_id = "i-0123456789abcdef0"
# The instance mode; autoscaling_group.tfvars is the other.
autoscaling_group_name = null
instance_type          = "g5.xlarge"
use_gpu                = true
instance_role_name     = "llm-dev-20260101000000000000000001"
logs = {
  enabled        = true
  retention_days = 30
  kms_key_arn    = null
}
metrics = {
  enabled           = true
  alarm_email       = null
  unhealthy_minutes = 5
}

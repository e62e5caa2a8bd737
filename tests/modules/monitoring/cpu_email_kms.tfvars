instance_type = "c7i.4xlarge"
use_gpu       = false
logs = {
  enabled        = true
  retention_days = 90
  kms_key_arn    = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
}
metrics = {
  enabled           = true
  alarm_email       = "ops@example.com"
  unhealthy_minutes = 10
}

logs = {
  enabled        = false
  retention_days = 30
  kms_key_arn    = null
}
metrics = {
  enabled           = false
  alarm_email       = null
  unhealthy_minutes = 5
}

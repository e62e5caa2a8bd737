metrics = {
  enabled           = false
  alarm_email       = "ops@example.com"
  unhealthy_minutes = 5
}

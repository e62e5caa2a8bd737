volume_kms_key_id = "arn:aws:kms:us-east-1:123456789012:key/0b6a3c56-1d2e-4f5a-9b8c-7d6e5f4a3b2c"
schedule = {
  start    = null
  stop     = "cron(0 22 * * ? *)"
  timezone = "UTC"
}

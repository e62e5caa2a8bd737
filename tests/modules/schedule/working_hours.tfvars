schedule = {
  start    = "0 8 ? * MON-FRI *"
  stop     = "0 20 ? * MON-FRI *"
  timezone = "Europe/Berlin"
}

# The four cost modes at once: Spot with a price cap, working hours on weekdays, idle stop,
# and a cost-allocation tag on every resource.
ami_id              = "ami-0123456789abcdef0"
availability_zones  = ["us-east-1a", "us-east-1b"]
image_uri           = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:0123456789abcdef"
allowed_cidr_blocks = ["198.51.100.0/24"]
tags                = { CostCenter = "ml-platform-1234" }
use_spot            = true
spot_max_price      = "0.60"
idle_stop_minutes   = 30
schedule = {
  start    = "0 8 ? * MON-FRI *"
  stop     = "cron(0 20 ? * MON-FRI *)"
  timezone = "Europe/Berlin"
}

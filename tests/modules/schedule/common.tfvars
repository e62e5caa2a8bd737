# What every modules/schedule case passes; each <case>.tfvars adds the schedule.
name              = "llm-dev"
region            = "us-east-1"
account_id        = "123456789012"
partition         = "aws"
instance_id       = "i-0123456789abcdef0"
instance_arn      = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
volume_kms_key_id = null
tags              = { CostCenter = "ml-platform-1234" }

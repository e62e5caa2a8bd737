name               = "llm-dev"
cidr_block         = "10.20.0.0/16"
az_count           = 2
availability_zones = ["us-east-1a", "us-east-1b"]

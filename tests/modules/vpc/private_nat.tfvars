name                   = "llm-dev"
cidr_block             = "10.20.0.0/16"
az_count               = 3
availability_zones     = ["us-east-1a", "us-east-1b", "us-east-1c"]
enable_private_subnets = true
enable_nat_gateway     = true

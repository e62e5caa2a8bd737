# CPU instances in private subnets behind the NAT gateway (no public addresses), the load
# balancer in the public subnets, only the office network allowed in.
deployment_mode        = "autoscaling"
use_gpu                = false
image_uri              = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:0123456789abcdef"
ami_id                 = "ami-0123456789abcdef0"
domain_name            = "example.com"
route53_zone_id        = "Z0123456789ABCDEFGHIJ"
enable_private_subnets = true
enable_nat_gateway     = true
allowed_cidr_blocks    = ["203.0.113.0/24"]
min_healthy_percentage = 50

# One instance from a Spot mix (an On-Demand base of 0: all Spot, across three GPU types),
# scaled on ALB requests per target; the zone looked up by name; the S3 model cache.
deployment_mode         = "autoscaling"
image_uri               = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:0123456789abcdef"
ami_id                  = "ami-0123456789abcdef0"
domain_name             = "example.com"
min_size                = 1
max_size                = 3
desired_capacity        = 1
use_spot                = true
on_demand_base_capacity = 0
spot_instance_types     = ["g6.xlarge", "g5.2xlarge"]
scaling_metric          = "alb_request_count"
scaling_target          = 60
model_cache_bucket      = "my-models"

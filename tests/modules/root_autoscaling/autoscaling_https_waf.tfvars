# Two GPU instances behind the load balancer, HTTPS with an ACM certificate at
# llm.example.com, WAF with logging; an existing image, an explicit AMI.
deployment_mode        = "autoscaling"
image_uri              = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:0123456789abcdef"
ami_id                 = "ami-0123456789abcdef0"
domain_name            = "example.com"
route53_zone_id        = "Z0123456789ABCDEFGHIJ"
min_size               = 2
max_size               = 4
desired_capacity       = 2
enable_waf             = true
waf_log_retention_days = 30

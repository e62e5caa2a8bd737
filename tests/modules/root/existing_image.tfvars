image_uri            = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
ami_id               = "ami-0123456789abcdef0"
availability_zones   = ["us-east-1a", "us-east-1b"]
domain_name          = "example.com"
route53_zone_id      = "Z0123456789ABCDEFGHIJ"
allow_plaintext_http = true
wait_for_ready       = false # the lifecycle tests apply this case: no endpoint answers here

use_gpu            = false
instance_type      = "c7i.4xlarge"
availability_zones = ["us-east-1a", "us-east-1b"]
image_uri          = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:0123456789abcdef"
model_id           = "Qwen/Qwen2.5-1.5B-Instruct"
# Plain HTTP, but only to one network: no allow_plaintext_http needed.
allowed_cidr_blocks = ["198.51.100.0/24"]

name                 = "llm-dev"
region               = "us-east-1"
account_id           = "123456789012"
vpc_id               = "vpc-0123456789abcdef0"
subnet_id            = "subnet-0123456789abcdef0"
availability_zone    = "us-east-1a"
allowed_cidr_blocks  = ["0.0.0.0/0"]
scripts_bucket_name  = "llm-dev-123456789012-us-east-1"
ecr_repository_arn   = "arn:aws:ecr:us-east-1:123456789012:repository/llm-dev"
proxy_image_uri      = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:0123456789abcdef"
instance_type        = "c7i.4xlarge"
use_gpu              = false
ami_id               = "ami-0123456789abcdef0"
allow_plaintext_http = true
vllm = {
  model_id = "Qwen/Qwen2.5-1.5B-Instruct"
}
proxy = {
  default_timeout = 60
  max_timeout     = 300
}

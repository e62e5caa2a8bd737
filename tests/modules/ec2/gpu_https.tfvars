name                = "llm-dev"
region              = "us-east-1"
account_id          = "123456789012"
vpc_id              = "vpc-0123456789abcdef0"
subnet_id           = "subnet-0123456789abcdef0"
availability_zone   = "us-east-1a"
allowed_cidr_blocks = ["0.0.0.0/0"]
scripts_bucket_name = "llm-dev-123456789012-us-east-1"
ecr_repository_arn  = "arn:aws:ecr:us-east-1:123456789012:repository/llm-dev"
proxy_image_uri     = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:0123456789abcdef"
instance_type       = "g5.xlarge"
ami_id              = "ami-0123456789abcdef0"
ssh_cidr_blocks     = ["198.51.100.7/32"]
key_name            = "ops"
vllm = {
  image      = "registry.example.com:5000/mirror/vllm-openai:v0.32.0"
  model_id   = "Qwen/Qwen2.5-7B-Instruct"
  extra_args = ["--enable-prefix-caching", "--max-num-seqs=64"]
}
https = {
  enabled     = true
  domain_name = "llm.example.com"
  acme_email  = "ops@example.com"
}

# What every modules/ec2 case passes; each <case>.tfvars adds or overrides. The root module
# is the module's caller and owns the defaults, so every input is given here, as the root
# gives it (its defaults unless a case says otherwise).
name                    = "llm-dev"
region                  = "us-east-1"
account_id              = "123456789012"
partition               = "aws"
vpc_id                  = "vpc-0123456789abcdef0"
subnet_id               = "subnet-0123456789abcdef0"
availability_zone       = "us-east-1a"
allowed_cidr_blocks     = ["0.0.0.0/0"]
ssh_cidr_blocks         = []
key_name                = null
architecture            = "x86_64"
allow_plaintext_http    = false
use_gpu                 = true
ami_id                  = "ami-0123456789abcdef0"
root_volume_size        = 100
data_volume_size        = 200
instance_version        = 1
scripts_bucket_name     = "llm-dev-123456789012-us-east-1"
ecr_repository_arn      = "arn:aws:ecr:us-east-1:123456789012:repository/llm-dev"
proxy_image_uri         = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:0123456789abcdef"
hf_token_parameter_name = null # the module's own: /<name>/hf_token
api_keys_parameter_name = null # the module's own: /<name>/api_keys
proxy = {
  port            = 8080
  default_timeout = 90
  max_timeout     = 600
  max_concurrency = 256
  max_body_bytes  = 10485760
}
https = {
  enabled     = false
  domain_name = null
  acme_email  = null
  acme_server = "https://acme-v02.api.letsencrypt.org/directory"
}
deployment_mode    = "instance"
enable_waf         = false
use_spot           = false
vpc_cidr_block     = "10.20.0.0/16"
model_cache_bucket = null
spot_max_price     = null
idle_stop_minutes  = null

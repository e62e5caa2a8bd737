gpu_instance_type    = "g5.12xlarge"
tensor_parallel_size = 4
model_id             = "Qwen/Qwen2.5-32B-Instruct"
max_model_len        = 16384
ami_id               = "ami-0123456789abcdef0"
availability_zones   = ["us-east-1a", "us-east-1b"]
image_uri            = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:0123456789abcdef"
allow_plaintext_http = true

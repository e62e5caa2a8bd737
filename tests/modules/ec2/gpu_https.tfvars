instance_type   = "g5.xlarge"
ssh_cidr_blocks = ["198.51.100.7/32"]
key_name        = "ops"
vllm = {
  image                  = "registry.example.com:5000/mirror/vllm-openai:v0.32.0"
  model_id               = "Qwen/Qwen2.5-7B-Instruct"
  max_model_len          = 8192
  gpu_memory_utilization = 0.9
  tensor_parallel_size   = 1
  extra_args             = ["--enable-prefix-caching", "--max-num-seqs=64"]
  startup_timeout        = 3600
}
https = {
  enabled     = true
  domain_name = "llm.example.com"
  acme_email  = "ops@example.com"
  acme_server = "https://acme-v02.api.letsencrypt.org/directory"
}

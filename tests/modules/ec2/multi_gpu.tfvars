instance_type        = "g5.12xlarge"
data_volume_size     = 500
allow_plaintext_http = true
vllm = {
  image                  = null
  model_id               = "Qwen/Qwen2.5-32B-Instruct"
  max_model_len          = 16384
  gpu_memory_utilization = 0.92
  tensor_parallel_size   = 4
  extra_args             = []
  startup_timeout        = 3600
}
proxy = {
  port            = 8080
  default_timeout = 120
  max_timeout     = 900
  max_concurrency = 256
  max_body_bytes  = 10485760
}

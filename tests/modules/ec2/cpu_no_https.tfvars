instance_type        = "c7i.4xlarge"
use_gpu              = false
allow_plaintext_http = true
vllm = {
  image                  = null
  model_id               = "Qwen/Qwen2.5-1.5B-Instruct"
  max_model_len          = 8192
  gpu_memory_utilization = 0.9
  tensor_parallel_size   = 1
  extra_args             = []
  startup_timeout        = 3600
}
proxy = {
  port            = 8080
  default_timeout = 60
  max_timeout     = 300
  max_concurrency = 256
  max_body_bytes  = 10485760
}

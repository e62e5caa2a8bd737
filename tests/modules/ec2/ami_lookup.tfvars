instance_type        = "g5.xlarge"
ami_id               = null
allow_plaintext_http = true
vllm = {
  image                  = null
  model_id               = "Qwen/Qwen2.5-7B-Instruct"
  max_model_len          = 8192
  gpu_memory_utilization = 0.9
  tensor_parallel_size   = 1
  extra_args             = []
  startup_timeout        = 3600
}

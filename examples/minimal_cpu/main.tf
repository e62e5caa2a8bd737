# The smallest deployment: a CPU instance with the CPU build of vLLM and a small model,
# plain HTTP on the Elastic IP, open only to your own network. The proxy image is built
# from app/ and pushed to a new ECR repository during apply (docker needed where
# Terraform runs). Every other setting keeps its default (variables.tf at the root).

module "inference" {
  source = "../.."

  name     = "llm"
  use_gpu  = false
  model_id = "Qwen/Qwen2.5-1.5B-Instruct"

  # The API is served over plain HTTP here: keep it to your own addresses.
  allowed_cidr_blocks = ["203.0.113.0/24"]
}

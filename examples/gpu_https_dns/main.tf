# A GPU instance (g5.xlarge, one A10G) serving a 7B model over HTTPS at
# https://llm.example.com: a Route53 A record in the existing public hosted zone
# example.com, a Let's Encrypt certificate obtained at boot. The proxy image is built from
# app/ during apply.

module "inference" {
  source = "../.."

  name              = "llm"
  use_gpu           = true
  gpu_instance_type = "g5.xlarge"
  model_id          = "Qwen/Qwen2.5-7B-Instruct"

  domain_name  = "example.com" # an existing Route53 public hosted zone
  enable_https = true
  acme_email   = "ops@example.com"
}

# Run a proxy image that already exists (built and pushed by CI with tools/build.py, see
# docs/OPERATIONS.md), pinned by digest: nothing is built during apply, so the machine
# running Terraform needs no docker. A GPU instance with HTTPS, as in ../gpu_https_dns.

module "inference" {
  source = "../.."

  name      = "llm"
  image_uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

  domain_name  = "example.com"
  enable_https = true
  acme_email   = "ops@example.com"
}

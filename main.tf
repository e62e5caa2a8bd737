# Data flow (see docs/ARCHITECTURE.md): vpc, ecr -> build -> ec2 (renders the scripts)
# -> scripts_bucket (uploads them); route53 points the name at ec2's Elastic IP; schedule
# (working hours) starts and stops ec2's instance. The
# bucket name is computed here once, so ec2 can scope its policy to it without depending
# on the bucket module, and the graph reads top to bottom.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  prefix     = "${var.name}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id

  instance_type = var.use_gpu ? var.gpu_instance_type : var.instance_type
  # Graviton types carry a "g" after the generation digit (c7g, m7gd, c6gn, im4gn, g5g) or
  # are a1; every other type is x86_64. The proxy image is built for this platform and the
  # CPU AMI and vLLM CPU image are picked for it.
  architecture   = can(regex("^(a1|[a-z]+[0-9]+[a-z0-9-]*g[a-z0-9-]*)\\.", local.instance_type)) ? "arm64" : "x86_64"
  image_platform = local.architecture == "arm64" ? "linux/arm64" : "linux/amd64"

  # EC2 counts On-Demand vCPUs per family class; the quota names read "Running On-Demand
  # <class> instances" (Service Quotas, service code ec2).
  instance_family = regex("^[a-z]+", local.instance_type)
  quota_family = lookup({
    g = "G and VT", vt = "G and VT", gr = "G and VT", p = "P", inf = "Inf", trn = "Trn",
    x = "X", f = "F", dl = "DL", u = "High Memory", hpc = "HPC",
  }, local.instance_family, "Standard")

  # Deterministic and globally unique (account + region); at most 59 characters.
  scripts_bucket_name = "${local.prefix}-${local.account_id}-${var.region}"

  hostname = var.domain_name == null ? null : "${coalesce(var.subdomain, var.name)}.${var.domain_name}"
  dns      = var.domain_name != null && var.create_route53_records

  api_endpoint = (
    var.enable_https ? "https://${local.hostname}" :
    local.hostname != null ? "http://${local.hostname}" :
    "http://${module.ec2.public_ip}"
  )

  image_uri = var.image_uri != null ? var.image_uri : module.build[0].image_uri
}

# The zones that offer the instance type: GPU types in particular are missing from some
# zones of most regions, and the first zone is often one of them.
data "aws_ec2_instance_type_offerings" "instance" {
  location_type = "availability-zone"

  filter {
    name   = "instance-type"
    values = [local.instance_type]
  }

  lifecycle {
    postcondition {
      condition     = length(self.locations) > 0
      error_message = "${local.instance_type} is not offered in any availability zone of ${var.region}. Pick another instance type or region; `aws ec2 describe-instance-type-offerings --region ${var.region} --location-type availability-zone --filters Name=instance-type,Values=${local.instance_type}` lists where it is."
    }
  }
}

module "vpc" {
  source = "./modules/vpc"

  name                   = local.prefix
  cidr_block             = var.vpc_cidr
  az_count               = var.az_count
  availability_zones     = var.availability_zones
  usable_zones           = data.aws_ec2_instance_type_offerings.instance.locations
  enable_private_subnets = var.enable_private_subnets
  enable_nat_gateway     = var.enable_nat_gateway
}

module "ecr" {
  source = "./modules/ecr"

  name                  = local.prefix
  image_retention_count = var.ecr_image_retention_count
  force_delete          = var.ecr_force_delete
}

# Builds app/ and pushes it when its content hash is not in the repository yet. Skipped
# when an existing image_uri is given.
module "build" {
  source = "./modules/build"
  count  = var.image_uri == null ? 1 : 0

  repository_url = module.ecr.repository_url
  source_dir     = "${path.module}/app"
  aws_region     = var.region
  platform       = local.image_platform
}

module "ec2" {
  source = "./modules/ec2"

  name              = local.prefix
  region            = var.region
  account_id        = local.account_id
  partition         = data.aws_partition.current.partition
  vpc_id            = module.vpc.vpc_id
  subnet_id         = module.vpc.public_subnet_ids[0]
  availability_zone = module.vpc.availability_zones[0]

  instance_type        = local.instance_type
  architecture         = local.architecture
  use_gpu              = var.use_gpu
  ami_id               = var.ami_id
  root_volume_size     = var.root_volume_size
  data_volume_size     = var.data_volume_size
  key_name             = var.key_name
  allowed_cidr_blocks  = var.allowed_cidr_blocks
  allow_plaintext_http = var.allow_plaintext_http
  ssh_cidr_blocks      = var.ssh_cidr_blocks
  instance_version     = var.instance_version

  scripts_bucket_name = local.scripts_bucket_name
  ecr_repository_arn  = module.ecr.repository_arn
  proxy_image_uri     = local.image_uri

  vllm = {
    image                  = var.use_gpu ? var.vllm_image : var.vllm_cpu_image
    model_id               = var.model_id
    max_model_len          = var.max_model_len
    gpu_memory_utilization = var.gpu_memory_utilization
    tensor_parallel_size   = var.tensor_parallel_size
    extra_args             = var.extra_vllm_args
    startup_timeout        = var.vllm_startup_timeout
  }

  proxy = {
    port            = var.app_port
    default_timeout = var.default_proxy_timeout
    max_timeout     = var.max_proxy_timeout
    max_concurrency = var.proxy_max_concurrency
    max_body_bytes  = var.proxy_max_body_bytes
  }

  https = {
    enabled     = var.enable_https
    domain_name = local.hostname
    acme_email  = var.acme_email
    acme_server = var.acme_server
  }

  hf_token_parameter_name = var.hf_token_parameter_name
  api_keys_parameter_name = var.api_keys_parameter_name

  use_spot          = var.use_spot
  spot_max_price    = var.spot_max_price
  idle_stop_minutes = var.idle_stop_minutes
}

# Working hours: EventBridge Scheduler starts and stops the instance.
module "schedule" {
  source = "./modules/schedule"
  count  = var.schedule == null ? 0 : 1

  name              = local.prefix
  region            = var.region
  account_id        = local.account_id
  partition         = data.aws_partition.current.partition
  instance_id       = module.ec2.instance_id
  instance_arn      = module.ec2.instance_arn
  volume_kms_key_id = module.ec2.volume_kms_key_id
  schedule = {
    start    = var.schedule.start
    stop     = var.schedule.stop
    timezone = var.schedule.timezone
  }
}

module "scripts_bucket" {
  source = "./modules/scripts_bucket"

  bucket_name = local.scripts_bucket_name
  scripts     = module.ec2.scripts
}

module "route53" {
  source = "./modules/route53"
  count  = local.dns ? 1 : 0

  zone_id         = var.route53_zone_id
  zone_name       = coalesce(var.route53_zone_name, var.domain_name)
  record_name     = local.hostname
  ip_addresses    = [module.ec2.public_ip]
  allow_overwrite = var.route53_allow_overwrite
}

# Data flow (see docs/ARCHITECTURE.md): vpc, ecr -> build -> ec2 (renders the scripts;
# in the instance mode it also runs them on one instance) -> scripts_bucket (uploads them);
# route53 points the name at ec2's Elastic IP; schedule (working hours, instance mode)
# starts and stops ec2's instance. In the autoscaling mode, load_balancer (ALB, ACM
# certificate) -> autoscaling (launch template from ec2's `launch`, group, scaling on
# monitoring's `load_metric`) and waf, and route53 aliases the name to the load balancer.
# The bucket name is computed here once, so ec2 can scope its policy to it without
# depending on the bucket module, and the graph reads top to bottom.

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

  autoscaling = var.deployment_mode == "autoscaling"
  # The group's name (modules/autoscaling names it `name`), known at plan: monitoring
  # decides by it which alarms exist.
  autoscaling_group_name = local.autoscaling ? local.prefix : null
  # The autoscaling mode validates its certificate in the zone, so it resolves the zone
  # once here for the certificate and the alias record.
  zone_id = var.route53_zone_id != null ? var.route53_zone_id : try(data.aws_route53_zone.endpoint[0].zone_id, null)

  api_endpoint = (
    local.autoscaling || var.enable_https ? "https://${local.hostname}" :
    local.hostname != null ? "http://${local.hostname}" :
    "http://${module.ec2.public_ip}"
  )

  image_uri = var.image_uri != null ? var.image_uri : module.build[0].image_uri

  # Where Session Manager commands go: the instance, or the group's first one in service.
  session_target = local.autoscaling ? "$(aws autoscaling describe-auto-scaling-groups --region ${var.region} --auto-scaling-group-names ${local.autoscaling_group_name} --query 'AutoScalingGroups[0].Instances[?LifecycleState==`InService`] | [0].InstanceId' --output text)" : module.ec2.instance_id
  ssm_command    = "aws ssm start-session --region ${var.region} --target ${local.session_target} --document-name AWS-StartInteractiveCommand --parameters"
  diagnostic_commands = merge(
    {
      boot_log       = "${local.ssm_command} command='sudo tail -f /var/log/user-data.log'"
      check_services = "${local.ssm_command} command='sudo /usr/local/bin/check-services.sh'"
      vllm_logs      = "${local.ssm_command} command='sudo journalctl -u vllm -f'"
      updates        = "${local.ssm_command} command='sudo journalctl -u inference-update -n 100'"
      health         = "curl -s ${local.api_endpoint}/health"
      list_models    = "curl -s -H \"Authorization: Bearer $(aws ssm get-parameter --region ${var.region} --name ${module.ec2.api_keys_parameter_name} --with-decryption --query Parameter.Value --output text | cut -d, -f1)\" ${local.api_endpoint}/v1/models"
    },
    var.enable_cloudwatch_logs ? {
      cloudwatch_logs = "aws logs tail ${module.monitoring.log_group_name} --region ${var.region} --follow"
    } : {},
  )
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
  vpc_cidr_block    = module.vpc.vpc_cidr_block
  subnet_id         = module.vpc.public_subnet_ids[0]
  availability_zone = module.vpc.availability_zones[0]

  instance_type    = local.instance_type
  architecture     = local.architecture
  use_gpu          = var.use_gpu
  ami_id           = var.ami_id
  root_volume_size = var.root_volume_size
  data_volume_size = var.data_volume_size
  key_name         = var.key_name
  # Behind the load balancer, only the load balancer reaches the instances (its rule is in
  # modules/load_balancer).
  allowed_cidr_blocks  = local.autoscaling ? [] : var.allowed_cidr_blocks
  allow_plaintext_http = var.allow_plaintext_http
  ssh_cidr_blocks      = var.ssh_cidr_blocks
  instance_version     = var.instance_version
  deployment_mode      = var.deployment_mode
  enable_waf           = var.enable_waf

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

  # The autoscaling mode's TLS ends at the load balancer (ACM): no certbot on the instances.
  https = {
    enabled     = var.enable_https && !local.autoscaling
    domain_name = local.hostname
    acme_email  = var.acme_email
    acme_server = var.acme_server
  }

  model_cache_bucket      = var.model_cache_bucket
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

# CloudWatch: the log group, the instance's permission to use it and to publish metrics,
# alarms, the dashboard, and its own files for the instance (uploaded with ec2's). In the
# autoscaling mode it watches the group instead of one instance, and its publisher also
# publishes the requests in flight the scaling policy tracks (its output load_metric).
module "monitoring" {
  source = "./modules/monitoring"

  name                   = local.prefix
  region                 = var.region
  account_id             = local.account_id
  partition              = data.aws_partition.current.partition
  instance_id            = module.ec2.instance_id
  autoscaling_group_name = local.autoscaling_group_name
  instance_type          = local.instance_type
  use_gpu                = var.use_gpu
  instance_role_name     = module.ec2.iam_role_name

  logs = {
    enabled        = var.enable_cloudwatch_logs
    retention_days = var.log_retention_days
    kms_key_arn    = var.log_kms_key_arn
  }

  metrics = {
    enabled           = var.enable_monitoring
    alarm_email       = var.alarm_email
    unhealthy_minutes = var.unhealthy_alarm_minutes
  }
}

module "scripts_bucket" {
  source = "./modules/scripts_bucket"

  bucket_name = local.scripts_bucket_name
  scripts     = merge(module.ec2.scripts, module.monitoring.instance_files)
}

module "route53" {
  source = "./modules/route53"
  count  = local.dns ? 1 : 0

  zone_id         = local.autoscaling ? local.zone_id : var.route53_zone_id
  zone_name       = coalesce(var.route53_zone_name, var.domain_name)
  record_name     = local.hostname
  ip_addresses    = local.autoscaling ? [] : [module.ec2.public_ip]
  alias           = local.autoscaling ? { name = module.load_balancer[0].dns_name, zone_id = module.load_balancer[0].zone_id } : null
  allow_overwrite = var.route53_allow_overwrite
}

# The readiness gate: `terraform apply` returns once the endpoint answers /ready, or fails
# after wait_for_ready_timeout with the commands that show why (tools/wait_ready.py, run
# with the python3 of the machine that runs Terraform). It runs again when the instance or
# the endpoint's address changes; in-place updates (update.sh) do not wait for it.
resource "terraform_data" "wait_for_ready" {
  count = var.wait_for_ready ? 1 : 0

  triggers_replace = {
    instance = local.autoscaling ? "${module.autoscaling[0].group_arn}:${module.autoscaling[0].launch_template_version}" : module.ec2.instance_id
    endpoint = local.api_endpoint
  }

  provisioner "local-exec" {
    # An argument list, no shell (see modules/build): the last argument goes in `command`.
    interpreter = ["python3", "${abspath(path.module)}/tools/wait_ready.py", "--timeout", tostring(var.wait_for_ready_timeout), "--url"]
    command     = "${local.api_endpoint}/ready"
    environment = {
      EC2I_DIAGNOSTICS = jsonencode(local.diagnostic_commands)
    }
  }

  # Everything the first boot needs: the scripts, the DNS record, the log group.
  depends_on = [module.scripts_bucket, module.route53, module.monitoring]
}

# --- the autoscaling mode -----------------------------------------------------------------

data "aws_route53_zone" "endpoint" {
  count = local.autoscaling && var.domain_name != null && var.route53_zone_id == null ? 1 : 0

  name         = coalesce(var.route53_zone_name, var.domain_name)
  private_zone = false
}

module "load_balancer" {
  source = "./modules/load_balancer"
  count  = local.autoscaling ? 1 : 0

  name                       = local.prefix
  vpc_id                     = module.vpc.vpc_id
  subnet_ids                 = module.vpc.public_subnet_ids
  allowed_cidr_blocks        = var.allowed_cidr_blocks
  instance_security_group_id = module.ec2.security_group_id
  hostname                   = local.hostname
  zone_id                    = local.zone_id
  idle_timeout               = module.ec2.load_balancer_timeouts.idle_timeout
  deregistration_delay       = module.ec2.load_balancer_timeouts.deregistration_delay
}

module "autoscaling" {
  source = "./modules/autoscaling"
  count  = local.autoscaling ? 1 : 0

  name   = local.prefix
  launch = module.ec2.launch
  # A change of the scripts or settings rolls the group (instance refresh) instead of
  # updating its instances in place together.
  scripts_digest = module.scripts_bucket.manifest_sha256
  # Behind the NAT gateway the instances need no public address.
  subnet_ids                  = var.enable_nat_gateway ? module.vpc.private_subnet_ids : module.vpc.public_subnet_ids
  associate_public_ip_address = !var.enable_nat_gateway
  target_group_arn            = module.load_balancer[0].target_group_arn
  request_count_label         = module.load_balancer[0].request_count_label
  load_metric                 = module.monitoring.load_metric

  min_size         = var.min_size
  max_size         = var.max_size
  desired_capacity = var.desired_capacity
  # A new instance boots, pulls the images, downloads and loads the model before /ready:
  # vllm_startup_timeout plus 10 minutes for the rest.
  health_check_grace_period = var.vllm_startup_timeout + 600
  instance_warmup           = 300
  min_healthy_percentage    = var.min_healthy_percentage

  spot = {
    enabled                 = var.use_spot
    on_demand_base_capacity = var.on_demand_base_capacity
    instance_types          = var.spot_instance_types
    max_price               = var.spot_max_price
  }
  scaling = {
    metric = var.scaling_metric
    target = var.scaling_target
  }
}

module "waf" {
  source = "./modules/waf"
  count  = local.autoscaling && var.enable_waf ? 1 : 0

  name               = local.prefix
  load_balancer_arn  = module.load_balancer[0].arn
  rate_limit         = var.waf_rate_limit
  log_retention_days = var.waf_log_retention_days
}

locals {
  # GPUs per instance of the NVIDIA types vLLM is usually run on; tensor_parallel_size is
  # checked against it. Types missing here are not checked (AWS adds new ones often).
  gpu_counts = {
    "g4dn.xlarge" = 1, "g4dn.2xlarge" = 1, "g4dn.4xlarge" = 1, "g4dn.8xlarge" = 1, "g4dn.16xlarge" = 1, "g4dn.12xlarge" = 4, "g4dn.metal" = 8,
    "g5.xlarge"   = 1, "g5.2xlarge" = 1, "g5.4xlarge" = 1, "g5.8xlarge" = 1, "g5.16xlarge" = 1, "g5.12xlarge" = 4, "g5.24xlarge" = 4, "g5.48xlarge" = 8,
    "g6.xlarge"   = 1, "g6.2xlarge" = 1, "g6.4xlarge" = 1, "g6.8xlarge" = 1, "g6.16xlarge" = 1, "g6.12xlarge" = 4, "g6.24xlarge" = 4, "g6.48xlarge" = 8,
    "g6e.xlarge"  = 1, "g6e.2xlarge" = 1, "g6e.4xlarge" = 1, "g6e.8xlarge" = 1, "g6e.16xlarge" = 1, "g6e.12xlarge" = 4, "g6e.24xlarge" = 4, "g6e.48xlarge" = 8,
    "p3.2xlarge"  = 1, "p3.8xlarge" = 4, "p3.16xlarge" = 8, "p4d.24xlarge" = 8, "p4de.24xlarge" = 8, "p5.48xlarge" = 8, "p5e.48xlarge" = 8,
  }
  gpu_count = lookup(local.gpu_counts, var.instance_type, null)

  # Canonical names the architectures amd64/arm64 where EC2 says x86_64/arm64.
  ubuntu_architecture = var.architecture == "arm64" ? "arm64" : "amd64"
  ami_ssm_parameter = coalesce(var.ami_ssm_parameter, var.use_gpu
    ? "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
    : "/aws/service/canonical/ubuntu/server/22.04/stable/current/${local.ubuntu_architecture}/hvm/ebs-gp2/ami-id"
  )
  ami_id = var.ami_id != null ? var.ami_id : data.aws_ssm_parameter.ami[0].insecure_value

  # The vLLM release this project runs and tests (vllm.version, also read by
  # tools/prepare/50-vllm.sh for the CPU build the integration tests use).
  vllm_version = trimspace(file("${path.module}/vllm.version"))
  vllm_default_images = {
    gpu    = "vllm/vllm-openai:v${local.vllm_version}"
    x86_64 = "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v${local.vllm_version}"
    arm64  = "public.ecr.aws/q9t5s3a7/vllm-arm64-cpu-release-repo:v${local.vllm_version}"
  }
  vllm_image = coalesce(var.vllm.image, local.vllm_default_images[var.use_gpu ? "gpu" : var.architecture])

  # Blocks shorter than /16 count as the open internet for the plaintext rule below.
  wide_open_cidrs = [for cidr in var.allowed_cidr_blocks : cidr if tonumber(split("/", cidr)[1]) < 16]

  # NGINX gives the proxy a margin over its own budget, so that the proxy's 504 (OpenAI
  # error shape) reaches the client instead of NGINX cutting the connection first.
  nginx_timeout_margin = 30

  # The autoscaling mode's load balancer, one margin further out: its idle timeout lets the
  # longest silence through (the proxy's budget before a first byte, plus NGINX's margin),
  # and a deregistering instance keeps its requests that long. NGINX keeps connections from
  # it open longer than it keeps them idle (else it may reuse one NGINX just closed: 502).
  load_balancer_timeouts = {
    idle_timeout         = var.proxy.max_timeout + 2 * local.nginx_timeout_margin
    deregistration_delay = var.proxy.max_timeout + 2 * local.nginx_timeout_margin
  }
  nginx_keepalive_timeout = local.load_balancer_timeouts.idle_timeout + local.nginx_timeout_margin
}

# Spot with interruption behaviour stop needs a type EC2 offers as Spot and that boots
# from EBS (docs.aws.amazon.com/AWSEC2/latest/UserGuide/interruption-behavior.html: a
# persistent request, no launch group, an EBS root volume). EC2's own description of the
# type says both; Mac (Dedicated Hosts only) and the High Memory U-*.metal types, for
# example, are not offered as Spot. Looked up only with use_spot.
data "aws_ec2_instance_type" "spot" {
  count         = var.use_spot ? 1 : 0
  instance_type = var.instance_type

  lifecycle {
    postcondition {
      condition     = contains(self.supported_usages_classes, "spot") && contains(self.supported_root_device_types, "ebs")
      error_message = "use_spot: ${var.instance_type} cannot run as a Spot instance that stops on an interruption (EC2 offers it for ${join(", ", self.supported_usages_classes)}, root devices ${join(", ", self.supported_root_device_types)}; stopping needs Spot and an EBS root volume). Pick another type, e.g. g5.xlarge or g6.xlarge, or use_spot = false."
    }
  }
}

data "aws_ssm_parameter" "ami" {
  count = var.ami_id == null ? 1 : 0
  name  = local.ami_ssm_parameter
}

# --- rendered scripts ---------------------------------------------------------------------

locals {
  data_mount = "/opt/models"
  vllm_port  = 8000

  # Non-secret settings every script reads from inference.env (values only; secrets are
  # fetched from SSM on the host at boot).
  config = {
    NAME                 = var.name
    AWS_REGION           = var.region
    SCRIPTS_BUCKET       = var.scripts_bucket_name
    USE_GPU              = tostring(var.use_gpu)
    MODEL_ID             = var.vllm.model_id
    VLLM_IMAGE           = local.vllm_image
    VLLM_PORT            = tostring(local.vllm_port)
    VLLM_STARTUP_TIMEOUT = tostring(var.vllm.startup_timeout)
    PROXY_IMAGE          = var.proxy_image_uri
    ECR_REGISTRY         = split("/", var.proxy_image_uri)[0]
    APP_PORT             = tostring(var.proxy.port)
    HF_TOKEN_PARAMETER   = local.hf_token_parameter_name
    API_KEYS_PARAMETER   = local.api_keys_parameter_name
    ENABLE_HTTPS         = tostring(var.https.enabled)
    DOMAIN_NAME          = var.https.domain_name == null ? "" : var.https.domain_name
    ACME_EMAIL           = var.https.acme_email == null ? "" : var.https.acme_email
    ACME_SERVER          = var.https.acme_server
    DATA_MOUNT           = local.data_mount
  }
  # Settings only some configurations have: without them inference.env stays as it was.
  config_extra = merge(
    var.model_cache_bucket == null ? {} : { MODEL_CACHE_BUCKET = var.model_cache_bucket },
    local.single_instance ? {} : { DEPLOYMENT_MODE = var.deployment_mode },
  )

  template_vars = {
    name                       = var.name
    use_gpu                    = var.use_gpu
    model_id                   = var.vllm.model_id
    vllm_image                 = local.vllm_image
    vllm_port                  = local.vllm_port
    max_model_len              = var.vllm.max_model_len
    gpu_memory_utilization     = var.vllm.gpu_memory_utilization
    tensor_parallel_size       = var.vllm.tensor_parallel_size
    extra_vllm_args            = join("", [for arg in var.vllm.extra_args : " ${arg}"])
    vllm_startup_timeout       = var.vllm.startup_timeout
    proxy_image                = var.proxy_image_uri
    app_port                   = var.proxy.port
    default_timeout            = var.proxy.default_timeout
    max_timeout                = var.proxy.max_timeout
    max_concurrency            = var.proxy.max_concurrency
    max_body_bytes             = var.proxy.max_body_bytes
    nginx_default_read_timeout = var.proxy.default_timeout + local.nginx_timeout_margin
    nginx_max_read_timeout     = var.proxy.max_timeout + local.nginx_timeout_margin
    enable_https               = var.https.enabled
    domain_name                = coalesce(var.https.domain_name, "_")
    data_mount                 = local.data_mount
    watchdog_interval          = var.watchdog_interval
    bucket                     = var.scripts_bucket_name
    region                     = var.region
    model_cache_bucket         = var.model_cache_bucket == null ? "" : var.model_cache_bucket
    behind_load_balancer       = !local.single_instance
    trusted_proxy_cidr         = var.vpc_cidr_block
    keepalive_timeout          = local.nginx_keepalive_timeout
    idle_stop_minutes          = coalesce(var.idle_stop_minutes, 0)
    # Timers of the cost controls that this configuration renders (setup-services.sh starts
    # them) and those it does not (setup-services.sh stops and removes them, should an
    # earlier apply have turned them on).
    optional_timers_on  = [for timer, on in local.optional_timers : timer if on]
    optional_timers_off = [for timer, on in local.optional_timers : timer if !on]
  }

  optional_timers = {
    "inference-idle-stop"   = var.idle_stop_minutes != null
    "inference-spot-notice" = var.use_spot
  }

  # File name on the instance => template. Every file lands in /opt/inference/scripts.
  script_templates = merge(
    {
      "lib.sh"                     = "lib.sh.tftpl"
      "main-setup.sh"              = "main-setup.sh.tftpl"
      "setup-packages.sh"          = "setup-packages.sh.tftpl"
      "setup-docker.sh"            = "setup-docker.sh.tftpl"
      "setup-gpu-driver.sh"        = "setup-gpu-driver.sh.tftpl"
      "setup-data-volume.sh"       = "setup-data-volume.sh.tftpl"
      "setup-secrets.sh"           = "setup-secrets.sh.tftpl"
      "setup-services.sh"          = "setup-services.sh.tftpl"
      "setup-nginx.sh"             = "setup-nginx.sh.tftpl"
      "ecr-login.sh"               = "ecr-login.sh.tftpl"
      "health-watchdog.sh"         = "health-watchdog.sh.tftpl"
      "refresh-keys.sh"            = "refresh-keys.sh.tftpl"
      "prune-images.sh"            = "prune-images.sh.tftpl"
      "recovery.sh"                = "recovery.sh.tftpl"
      "update.sh"                  = "update.sh.tftpl"
      "check-services.sh"          = "check-services.sh.tftpl"
      "vllm.service"               = "vllm.service.tftpl"
      "inference-proxy.service"    = "inference-proxy.service.tftpl"
      "inference-watchdog.service" = "inference-watchdog.service.tftpl"
      "inference-watchdog.timer"   = "inference-watchdog.timer.tftpl"
      "inference-recovery.service" = "inference-recovery.service.tftpl"
      "inference-update.service"   = "inference-update.service.tftpl"
      "inference-keys.service"     = "inference-keys.service.tftpl"
      "inference-keys.timer"       = "inference-keys.timer.tftpl"
      "inference-prune.service"    = "inference-prune.service.tftpl"
      "inference-prune.timer"      = "inference-prune.timer.tftpl"
      "nginx-site.conf"            = "nginx-site.conf.tftpl"
    },
    # In-place updates are the instance mode's; the autoscaling mode rolls its group instead
    # (modules/autoscaling), so its instances apply a new manifest only when they boot.
    local.single_instance ? {
      "inference-update.timer" = "inference-update.timer.tftpl"
    } : {},
    var.idle_stop_minutes != null ? {
      "idle-stop.sh"                = "idle-stop.sh.tftpl"
      "inference-idle-stop.service" = "inference-idle-stop.service.tftpl"
      "inference-idle-stop.timer"   = "inference-idle-stop.timer.tftpl"
    } : {},
    var.use_spot ? {
      "spot-notice.sh"                = "spot-notice.sh.tftpl"
      "inference-spot-notice.service" = "inference-spot-notice.service.tftpl"
      "inference-spot-notice.timer"   = "inference-spot-notice.timer.tftpl"
    } : {},
    var.https.enabled ? {
      "setup-certbot.sh"             = "setup-certbot.sh.tftpl"
      "nginx-acme.conf"              = "nginx-acme.conf.tftpl"
      "inference-cert-renew.service" = "inference-cert-renew.service.tftpl"
      "inference-cert-renew.timer"   = "inference-cert-renew.timer.tftpl"
    } : {},
    var.model_cache_bucket != null ? {
      "setup-model-cache.sh" = "setup-model-cache.sh.tftpl"
    } : {},
  )

  script_contents = merge(
    { for file, template in local.script_templates : file => templatefile("${path.module}/templates/${template}", local.template_vars) },
    { "inference.env" = templatefile("${path.module}/templates/inference.env.tftpl", { config = merge(local.config, local.config_extra) }) },
  )

  # The bootstrap names no script and no setting (they reach the instance through the
  # bucket's manifest, applied in place by update.sh), so it changes only with what needs
  # a new instance or a new place to look: instance_version, the bucket, the region.
  user_data = templatefile("${path.module}/templates/bootstrap.sh.tftpl", {
    bucket           = var.scripts_bucket_name
    region           = var.region
    instance_version = var.instance_version
  })
}

# --- security defaults: every instance of the deployment, whichever mode launches it ------

locals {
  # The single instance (deployment_mode "instance") uses these here; the autoscaling mode
  # gets them through the `launch` output for its launch template.
  single_instance = var.deployment_mode == "instance"

  # IMDSv2 only, and one hop: containers never reach the instance role's credentials.
  metadata_options = {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }
  root_volume = {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size
    encrypted             = true
    kms_key_id            = var.volume_kms_key_id
    delete_on_termination = true
  }
  # The model cache volume; setup-data-volume.sh finds it as the one unpartitioned EBS disk
  # that is not the root disk.
  data_volume = {
    device_name = "/dev/sdf"
    volume_type = "gp3"
    volume_size = var.data_volume_size
    encrypted   = true
    kms_key_id  = var.volume_kms_key_id
  }
}

# --- instance (deployment_mode "instance") ------------------------------------------------

# replace_triggered_by needs a resource: this one changes only when instance_version does.
resource "terraform_data" "instance_version" {
  count = local.single_instance ? 1 : 0

  input = var.instance_version
}

resource "aws_instance" "this" {
  #checkov:skip=CKV_AWS_88:The instance must be reachable; it takes no public IP from the subnet but gets an Elastic IP.
  count = local.single_instance ? 1 : 0

  ami                    = local.ami_id
  instance_type          = var.instance_type
  subnet_id              = var.subnet_id
  vpc_security_group_ids = [aws_security_group.this.id]
  iam_instance_profile   = aws_iam_instance_profile.this.name
  key_name               = var.key_name
  ebs_optimized          = true
  monitoring             = true
  # Linux: there is no Windows administrator password to fetch into state.
  get_password_data = false

  # Stop, never terminate, when the machine powers itself off (the idle stop, a `shutdown`
  # by hand): the model volume, the Elastic IP and the instance id stay, and a start brings
  # the same instance back.
  instance_initiated_shutdown_behavior = "stop"

  # Spot: a persistent request whose interruption stops the instance (EC2 starts it again
  # when capacity returns). RunInstances sets no expiry on it: it lasts until the instance
  # is terminated.
  dynamic "instance_market_options" {
    for_each = var.use_spot ? [var.spot_max_price] : []

    content {
      market_type = "spot"

      spot_options {
        spot_instance_type             = "persistent"
        instance_interruption_behavior = "stop"
        max_price                      = instance_market_options.value
      }
    }
  }

  # Stable across script and setting changes (see local.user_data): the provider applies a
  # change of user_data by stopping and starting the instance. Replacement is
  # instance_version's job alone.
  user_data                   = local.user_data
  user_data_replace_on_change = false

  metadata_options {
    http_endpoint               = local.metadata_options.http_endpoint
    http_tokens                 = local.metadata_options.http_tokens
    http_put_response_hop_limit = local.metadata_options.http_put_response_hop_limit
    instance_metadata_tags      = local.metadata_options.instance_metadata_tags
  }

  root_block_device {
    volume_type           = local.root_volume.volume_type
    volume_size           = local.root_volume.volume_size
    encrypted             = local.root_volume.encrypted
    kms_key_id            = local.root_volume.kms_key_id
    delete_on_termination = local.root_volume.delete_on_termination
  }

  tags = merge(var.tags, { Name = var.name })

  lifecycle {
    create_before_destroy = true
    replace_triggered_by  = [terraform_data.instance_version[count.index]]
    # A newer AMI behind the SSM parameter must not replace a running instance; it is
    # picked up at the next instance_version bump.
    ignore_changes = [ami]

    precondition {
      condition     = !var.https.enabled || var.https.domain_name != null
      error_message = "HTTPS needs a domain name: set domain_name (and a Route53 zone) when enable_https is true."
    }
    precondition {
      condition     = !var.https.enabled || var.https.acme_email != null
      error_message = "HTTPS needs acme_email: Let's Encrypt sends certificate expiry notices there."
    }
    precondition {
      condition     = !var.enable_waf
      error_message = "enable_waf needs deployment_mode = \"autoscaling\": the web ACL attaches to the load balancer, which only the autoscaling mode has."
    }
    precondition {
      condition     = var.https.enabled || var.allow_plaintext_http || length(local.wide_open_cidrs) == 0
      error_message = "Without HTTPS the API key and every prompt would cross the internet in clear text, open to ${join(", ", local.wide_open_cidrs)}. Choose one: (1) serve HTTPS: set domain_name, acme_email and enable_https = true; (2) narrow allowed_cidr_blocks to your own networks, each /16 or longer, e.g. [\"203.0.113.0/24\"]; (3) accept plain HTTP explicitly: allow_plaintext_http = true."
    }
  }
}

# --- model cache volume: survives instance replacement ------------------------------------

resource "aws_ebs_volume" "data" {
  count = local.single_instance ? 1 : 0

  availability_zone = var.availability_zone
  type              = local.data_volume.volume_type
  size              = local.data_volume.volume_size
  encrypted         = local.data_volume.encrypted
  kms_key_id        = local.data_volume.kms_key_id

  tags = merge(var.tags, { Name = "${var.name}-models" })
}

resource "aws_volume_attachment" "data" {
  count = local.single_instance ? 1 : 0

  device_name = local.data_volume.device_name
  volume_id   = aws_ebs_volume.data[0].id
  instance_id = aws_instance.this[0].id
  # On replacement the old instance is stopped before the volume moves, so the file
  # system is unmounted cleanly.
  stop_instance_before_detaching = true
}

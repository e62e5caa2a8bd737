# Every knob of the deployment. terraform.tfvars.example shows them all, commented.
# This file is the one place of each default and validation of what a user sets: the
# modules take these values as typed inputs and do not check them again (see
# docs/DEVELOPMENT.md "One source of truth").

# --- general --------------------------------------------------------------------------------

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region code such as us-east-1 or eu-west-2."
  }
}

variable "name" {
  description = "Short name of the deployment: prefixes every resource and is the host name under domain_name (name.domain)."
  type        = string
  default     = "llm"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.name))
    error_message = "name must be 2-20 characters of lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "environment" {
  description = "Environment label (dev, staging, prod, ...): part of every resource name and a tag."
  type        = string
  default     = "dev"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{0,9}$", var.environment))
    error_message = "environment must be 1-10 lowercase letters or digits, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags for every resource (merged into the provider's default_tags)."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "deployment_mode" {
  description = "How the endpoint runs: \"instance\" (default) is one EC2 instance with an Elastic IP, NGINX and Let's Encrypt on the box; \"autoscaling\" is an Auto Scaling group behind an Application Load Balancer with an ACM certificate (needs domain_name and a Route53 zone). docs/CUSTOMIZATION.md compares the two."
  type        = string
  default     = "instance"

  validation {
    condition     = contains(["instance", "autoscaling"], var.deployment_mode)
    error_message = "deployment_mode must be \"instance\" or \"autoscaling\"."
  }
}

# --- network --------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "IPv4 CIDR block of the VPC."
  type        = string
  default     = "10.20.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be an IPv4 CIDR block such as 10.20.0.0/16."
  }
}

variable "az_count" {
  description = "Number of availability zones with a public subnet, taken from the zones that offer the instance type (the instance uses the first of them)."
  type        = number
  default     = 2
}

variable "availability_zones" {
  description = "Explicit availability zones. Empty: the first az_count zones of the region that offer the instance type are looked up. Given: the instance runs in the first of them that offers its type."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "enable_private_subnets" {
  description = "Also create private subnets (unused by the instance; for your own additions)."
  type        = bool
  default     = false
}

variable "enable_nat_gateway" {
  description = "Create a NAT gateway for the private subnets (needs enable_private_subnets; billed per hour)."
  type        = bool
  default     = false
}

variable "allowed_cidr_blocks" {
  description = "IPv4 CIDR blocks that may reach the API on ports 80/443. Port 80 must stay open to the internet for Let's Encrypt's HTTP-01 challenge when enable_https is on; the API itself always requires a key. Without HTTPS, blocks wider than /16 (such as the default 0.0.0.0/0) need allow_plaintext_http = true."
  type        = list(string)
  default     = ["0.0.0.0/0"]
  nullable    = false

  validation {
    condition     = alltrue([for cidr in var.allowed_cidr_blocks : can(cidrhost(cidr, 0))])
    error_message = "allowed_cidr_blocks must contain IPv4 CIDR blocks such as 203.0.113.0/24."
  }
}

variable "allow_plaintext_http" {
  description = "Serve the API over plain HTTP to wide-open allowed_cidr_blocks (a block shorter than /16, e.g. 0.0.0.0/0) without HTTPS: the API key and every prompt cross the internet in clear text. False (default): refused at plan time; use HTTPS (domain_name, acme_email, enable_https) or narrow allowed_cidr_blocks instead."
  type        = bool
  default     = false
}

variable "ssh_cidr_blocks" {
  description = "IPv4 CIDR blocks allowed to SSH (port 22). Empty (default): port 22 is closed; use Session Manager."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for cidr in var.ssh_cidr_blocks : can(cidrhost(cidr, 0))])
    error_message = "ssh_cidr_blocks must contain IPv4 CIDR blocks such as 203.0.113.7/32."
  }
}

# --- instance -------------------------------------------------------------------------------

variable "use_gpu" {
  description = "Run on an NVIDIA GPU instance (gpu_instance_type, Deep Learning AMI). False: instance_type with the CPU build of vLLM."
  type        = bool
  default     = true
}

variable "gpu_instance_type" {
  description = "Instance type when use_gpu is true (g5.xlarge: one A10G, 24 GB)."
  type        = string
  default     = "g5.xlarge"
}

variable "instance_type" {
  description = "Instance type when use_gpu is false."
  type        = string
  default     = "c7i.4xlarge"
}

variable "ami_id" {
  description = "Explicit AMI ID. Null: the latest Deep Learning Base OSS NVIDIA AMI (GPU) or Ubuntu 22.04 (CPU) from SSM public parameters. A plain Ubuntu AMI on a GPU instance gets the driver installed and the kernel pinned."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must look like ami-0123456789abcdef0 or be null."
  }
}

variable "root_volume_size" {
  description = "Root volume size in GiB (OS and container images: the vLLM image alone is ~10 GiB)."
  type        = number
  default     = 100

  validation {
    condition     = var.root_volume_size >= 30
    error_message = "root_volume_size must be at least 30 GiB."
  }
}

variable "data_volume_size" {
  description = "Size in GiB of the model cache volume (/opt/models). It survives instance replacement, so weights are downloaded once."
  type        = number
  default     = 200

  validation {
    condition     = var.data_volume_size >= 10
    error_message = "data_volume_size must be at least 10 GiB."
  }
}

variable "key_name" {
  description = "EC2 key pair for SSH. Null (default): none; connect with Session Manager (see the ssm_session_command output)."
  type        = string
  default     = null
}

variable "instance_version" {
  description = "Bump to replace the instance: the old one is stopped and loses its data volume and Elastic IP first, the new one is launched and gets both, then the old one is terminated (downtime until the new one is ready; see docs/OPERATIONS.md, Replacing the instance)."
  type        = number
  default     = 1

  validation {
    condition     = var.instance_version >= 1 && floor(var.instance_version) == var.instance_version
    error_message = "instance_version must be a whole number >= 1."
  }
}

# --- cost: spot, working hours, idle stop (docs/CUSTOMIZATION.md, "What it costs") -------

variable "use_spot" {
  description = "Run on Spot capacity; an interruption comes with a 2-minute notice, which the instance logs while it drains the proxy. Instance mode: a persistent Spot request that stops (not terminates) the instance on an interruption, so the instance id, the Elastic IP and the model volume survive and EC2 starts it again when capacity returns. Autoscaling mode: a mixed-instances policy keeps on_demand_base_capacity instances On-Demand and runs the rest on Spot across the instance type and spot_instance_types (price-capacity-optimized, capacity rebalancing). False (default): On-Demand."
  type        = bool
  default     = false
}

variable "spot_max_price" {
  description = "Highest hourly price in USD to pay for Spot capacity, e.g. \"0.60\" (a price above it interrupts the instance), in both modes. Null (default): up to the On-Demand price, which AWS recommends. Only with use_spot."
  type        = string
  default     = null

  validation {
    condition     = var.spot_max_price == null || can(regex("^[0-9]+(\\.[0-9]+)?$", coalesce(var.spot_max_price, "-"))) && try(tonumber(var.spot_max_price) > 0, false)
    error_message = "spot_max_price must be a price in USD per hour greater than 0, written as a string such as \"0.60\", or null for the On-Demand price."
  }
}

variable "schedule" {
  description = "Instance mode: working hours: EventBridge Scheduler starts the instance at `start` and stops it at `stop`, both EventBridge cron expressions (six fields: minutes hours day-of-month month day-of-week year, `?` in one of the two day fields), in the IANA time zone `timezone`. E.g. { start = \"0 8 ? * MON-FRI *\", stop = \"0 20 ? * MON-FRI *\", timezone = \"Europe/Berlin\" }. Either may be null (only start, or only stop). Null (default): no schedule."
  type = object({
    start    = optional(string)
    stop     = optional(string)
    timezone = optional(string, "UTC")
  })
  default = null

  validation {
    condition = var.schedule == null || alltrue([
      for expression in compact([try(var.schedule.start, null), try(var.schedule.stop, null)]) :
      can(regex("^(cron\\()?[0-9,*/-]+ [0-9,*/-]+ [0-9,*/?LW-]+ [0-9A-Za-z,*/-]+ [0-9A-Za-z,*/?L#-]+ [0-9,*/-]+\\)?$", expression))
      && length(regexall("^(cron\\()?\\S+ \\S+ (\\? \\S+ [^?]|[^?]\\S* \\S+ \\?)", expression)) == 1
    ])
    error_message = "schedule.start and schedule.stop must be EventBridge cron expressions of six fields, minutes hours day-of-month month day-of-week year, with ? in exactly one of day-of-month and day-of-week, e.g. \"0 8 ? * MON-FRI *\" (08:00 on weekdays) or \"30 19 * * ? *\" (19:30 every day)."
  }
  validation {
    condition     = var.schedule == null || try(var.schedule.start != null || var.schedule.stop != null, false)
    error_message = "schedule needs start, stop or both, e.g. { start = \"0 8 ? * MON-FRI *\", stop = \"0 20 ? * MON-FRI *\" }; set schedule = null for none."
  }
  validation {
    condition     = var.schedule == null || can(regex("^[A-Z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$", try(var.schedule.timezone, "")))
    error_message = "schedule.timezone must be an IANA time zone such as UTC, Europe/Berlin or America/New_York."
  }
}

variable "idle_stop_minutes" {
  description = "Instance mode: stop the instance after this many minutes without an API request (health checks do not count; never while a request is in flight, never before setup is done, and counted from the boot at the earliest). It stays stopped until started again (the start_command output, or schedule.start). Null (default): never."
  type        = number
  default     = null

  validation {
    condition     = var.idle_stop_minutes == null || try(var.idle_stop_minutes >= 5 && floor(var.idle_stop_minutes) == var.idle_stop_minutes, false)
    error_message = "idle_stop_minutes must be a whole number of minutes >= 5 (a start takes minutes: weights load from the volume), or null to never stop."
  }
}

# --- model (vLLM) ---------------------------------------------------------------------------

variable "model_id" {
  description = "Hugging Face model id served by vLLM."
  type        = string
  default     = "Qwen/Qwen2.5-7B-Instruct"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._/-]*$", var.model_id))
    error_message = "model_id must be a Hugging Face model id such as Qwen/Qwen2.5-7B-Instruct."
  }
}

variable "max_model_len" {
  description = "Maximum context length (prompt + completion tokens) vLLM allocates for."
  type        = number
  default     = 8192

  validation {
    condition     = var.max_model_len >= 256 && floor(var.max_model_len) == var.max_model_len
    error_message = "max_model_len must be a whole number >= 256."
  }
}

variable "gpu_memory_utilization" {
  description = "Share of GPU memory vLLM may use for weights and KV cache (0-1]."
  type        = number
  default     = 0.9

  validation {
    condition     = var.gpu_memory_utilization > 0 && var.gpu_memory_utilization <= 1
    error_message = "gpu_memory_utilization must be greater than 0 and at most 1."
  }
}

variable "tensor_parallel_size" {
  description = "GPUs the model is split across (1, 2, 4 or 8); at most the GPU count of the instance type."
  type        = number
  default     = 1

  validation {
    condition     = contains([1, 2, 4, 8], var.tensor_parallel_size)
    error_message = "tensor_parallel_size must be one of 1, 2, 4, 8."
  }
}

variable "vllm_image" {
  description = "vLLM container image for GPU instances, pinned to a tag or digest. Null: vllm/vllm-openai at the release in modules/ec2/vllm.version (the one the integration tests run)."
  type        = string
  default     = null

  # The image_uri pattern (Docker's reference grammar), and no :latest.
  validation {
    condition     = var.vllm_image == null || (can(regex("^(?:(?:localhost(?::[0-9]+)?|(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])(?:\\.(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))+(?::[0-9]+)?|(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]):[0-9]+|\\[[0-9A-Fa-f:]+\\](?::[0-9]+)?)/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})?|@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})$", coalesce(var.vllm_image, "-"))) && !endswith(coalesce(var.vllm_image, "-"), ":latest"))
    error_message = "vllm_image must be an image reference pinned to a tag other than latest or to a digest, [registry[:port]/]path:tag or ...@sha256:<hex>, e.g. vllm/vllm-openai:v<release>, or null for the release in modules/ec2/vllm.version."
  }
}

variable "vllm_cpu_image" {
  description = "vLLM container image for CPU instances (use_gpu = false), pinned to a tag or digest. Null: vLLM's CPU release image (x86_64 or arm64, after the instance type) at the release in modules/ec2/vllm.version."
  type        = string
  default     = null

  # The image_uri pattern (Docker's reference grammar), and no :latest.
  validation {
    condition     = var.vllm_cpu_image == null || (can(regex("^(?:(?:localhost(?::[0-9]+)?|(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])(?:\\.(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))+(?::[0-9]+)?|(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]):[0-9]+|\\[[0-9A-Fa-f:]+\\](?::[0-9]+)?)/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})?|@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})$", coalesce(var.vllm_cpu_image, "-"))) && !endswith(coalesce(var.vllm_cpu_image, "-"), ":latest"))
    error_message = "vllm_cpu_image must be an image reference pinned to a tag other than latest or to a digest, [registry[:port]/]path:tag or ...@sha256:<hex>, e.g. public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v<release>, or null for the release in modules/ec2/vllm.version."
  }
}

variable "extra_vllm_args" {
  description = "Extra vLLM server arguments, one per entry, e.g. [\"--enable-prefix-caching\", \"--max-num-seqs=64\"]."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for arg in var.extra_vllm_args : can(regex("^[A-Za-z0-9_./:=,@+-]+$", arg))])
    error_message = "extra_vllm_args entries may contain only letters, digits and _./:=,@+- (one argument per entry, no spaces or quotes), e.g. [\"--enable-prefix-caching\", \"--max-num-seqs=64\"]."
  }
}

variable "vllm_startup_timeout" {
  description = "Seconds the first vLLM start may take (image pull, weight download, load) before the proxy gives up waiting and the watchdog starts judging it."
  type        = number
  default     = 3600

  validation {
    condition     = var.vllm_startup_timeout >= 60
    error_message = "vllm_startup_timeout must be at least 60 seconds."
  }
}

# --- secrets (SSM parameter names only; values never pass through Terraform) -----------------

variable "hf_token_parameter_name" {
  description = "SSM SecureString parameter with the Hugging Face token (needed for gated models; create it with `aws ssm put-parameter`). Null: /<name>-<environment>/hf_token, one per deployment."
  type        = string
  default     = null

  validation {
    condition     = var.hf_token_parameter_name == null || can(regex("^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", coalesce(var.hf_token_parameter_name, "-")))
    error_message = "hf_token_parameter_name must be an SSM parameter path such as /llm-dev/hf_token, or null."
  }
}

variable "api_keys_parameter_name" {
  description = "SSM SecureString parameter with the proxy's API keys: a JSON key set with names and per-key limits (manage it with tools/keys.py) or a comma list. The instance re-reads it every minute, so a key added or removed there takes effect within a minute without a restart. Missing at first boot: the instance creates it with one random key (see the api_key_command output). Null: /<name>-<environment>/api_keys, one per deployment."
  type        = string
  default     = null

  validation {
    condition     = var.api_keys_parameter_name == null || can(regex("^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", coalesce(var.api_keys_parameter_name, "-")))
    error_message = "api_keys_parameter_name must be an SSM parameter path such as /llm-dev/api_keys, or null."
  }
}

# --- proxy and timeouts ---------------------------------------------------------------------

variable "default_proxy_timeout" {
  description = "Seconds: budget of ordinary requests in the proxy (NGINX allows 30 s more)."
  type        = number
  default     = 90

  validation {
    condition     = var.default_proxy_timeout > 0
    error_message = "default_proxy_timeout must be greater than 0 seconds."
  }
}

variable "max_proxy_timeout" {
  description = "Seconds: ceiling of the budget for long generations (NGINX allows 30 s more on generation routes). Must be >= default_proxy_timeout."
  type        = number
  default     = 600

  validation {
    condition     = var.max_proxy_timeout > 0
    error_message = "max_proxy_timeout must be greater than 0 seconds."
  }
}

variable "app_port" {
  description = "Port the proxy listens on (127.0.0.1 on the instance, behind NGINX)."
  type        = number
  default     = 8080

  validation {
    condition     = var.app_port >= 1024 && var.app_port <= 65535 && var.app_port != 8000
    error_message = "app_port must be between 1024 and 65535 and not 8000 (vLLM's port on the instance)."
  }
}

variable "proxy_max_concurrency" {
  description = "Requests the proxy serves at once; beyond it clients get 429 with Retry-After."
  type        = number
  default     = 256

  validation {
    condition     = var.proxy_max_concurrency >= 1
    error_message = "proxy_max_concurrency must be at least 1."
  }
}

variable "proxy_max_body_bytes" {
  description = "Largest request body in bytes (larger ones get 413)."
  type        = number
  default     = 10485760

  validation {
    condition     = var.proxy_max_body_bytes >= 1024
    error_message = "proxy_max_body_bytes must be at least 1024."
  }
}

# --- DNS and HTTPS --------------------------------------------------------------------------

variable "domain_name" {
  description = "Domain of an existing Route53 public hosted zone, e.g. example.com. The endpoint becomes <subdomain or name>.<domain_name>. Null: no DNS, no HTTPS; the API is served on the Elastic IP over HTTP."
  type        = string
  default     = null

  validation {
    condition     = var.domain_name == null || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.domain_name))
    error_message = "domain_name must be a lowercase domain such as example.com (the hosted zone's name, without the host label)."
  }
}

variable "subdomain" {
  description = "Host label under domain_name. Null: name."
  type        = string
  default     = null
}

variable "create_route53_records" {
  description = "Create the A record for the endpoint in the hosted zone (when domain_name is set). False: you point DNS at the public_ip output yourself."
  type        = bool
  default     = true
}

variable "route53_zone_id" {
  description = "ID of the hosted zone for the record. Null: the zone is looked up by route53_zone_name (default: domain_name)."
  type        = string
  default     = null
}

variable "route53_allow_overwrite" {
  description = "Let Terraform take over an A record of the same name that already exists in the zone (and delete it on destroy). False (default): an existing record makes the apply fail instead of being replaced silently."
  type        = bool
  default     = false
}

variable "route53_zone_name" {
  description = "Name of the hosted zone to look up when route53_zone_id is null. Null: domain_name."
  type        = string
  default     = null
}

variable "enable_https" {
  description = "Serve HTTPS on 443 with a Let's Encrypt certificate (port 80 then only answers the ACME challenge and redirects). Needs domain_name and acme_email."
  type        = bool
  default     = false
}

variable "acme_email" {
  description = "Email for the Let's Encrypt account (expiry notices). Required with enable_https."
  type        = string
  default     = null

  validation {
    condition     = var.acme_email == null || can(regex("^[^@\\s']+@[^@\\s']+\\.[^@\\s']+$", var.acme_email))
    error_message = "acme_email must be an email address such as ops@example.com."
  }
}

variable "acme_server" {
  description = "ACME directory URL. Use https://acme-staging-v02.api.letsencrypt.org/directory while testing to avoid rate limits; changing it issues a new certificate from the new server at the next boot. The certificate is kept on the data volume, so a replacement instance reuses it."
  type        = string
  default     = "https://acme-v02.api.letsencrypt.org/directory"

  validation {
    condition     = startswith(var.acme_server, "https://")
    error_message = "acme_server must be an https:// ACME directory URL."
  }
}

# --- image ----------------------------------------------------------------------------------

variable "image_uri" {
  description = "Existing proxy image to run (e.g. an ECR URI with a tag or digest). Null (default): build app/ and push it to this deployment's ECR repository during apply (needs docker where Terraform runs)."
  type        = string
  default     = null

  # Docker's reference grammar (distribution/reference): [host[:port]/]path[:tag][@digest],
  # where a host has a dot or a port or is localhost; here a tag or a digest is required.
  validation {
    condition     = var.image_uri == null || can(regex("^(?:(?:localhost(?::[0-9]+)?|(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])(?:\\.(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))+(?::[0-9]+)?|(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]):[0-9]+|\\[[0-9A-Fa-f:]+\\](?::[0-9]+)?)/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})?|@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})$", var.image_uri))
    error_message = "image_uri must be an image reference with a tag or a digest, [registry[:port]/]path:tag or ...@sha256:<hex>, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:3f2a9c1 or registry.example.com:5000/team/proxy:1.2."
  }
}

variable "ecr_image_retention_count" {
  description = "How many images the ECR lifecycle policy keeps."
  type        = number
  default     = 10
}

variable "ecr_force_delete" {
  description = "Let `terraform destroy` delete the ECR repository with its images."
  type        = bool
  default     = false
}

# --- autoscaling mode (deployment_mode = "autoscaling") --------------------------------------

variable "min_size" {
  description = "Autoscaling mode: fewest instances."
  type        = number
  default     = 1

  validation {
    condition     = var.min_size >= 0 && floor(var.min_size) == var.min_size
    error_message = "min_size must be a whole number >= 0."
  }
}

variable "max_size" {
  description = "Autoscaling mode: most instances (each one a full copy of the model on its own GPU(s); the account's vCPU quota must cover them, see the instance_quota_command output)."
  type        = number
  default     = 2

  validation {
    condition     = var.max_size >= 1 && floor(var.max_size) == var.max_size
    error_message = "max_size must be a whole number >= 1."
  }
}

variable "desired_capacity" {
  description = "Autoscaling mode: instances to start with (min_size <= desired_capacity <= max_size); the scaling policy moves it afterwards. With 2 or more, a rolling update never leaves the endpoint without a ready instance."
  type        = number
  default     = 1

  validation {
    condition     = var.desired_capacity >= 0 && floor(var.desired_capacity) == var.desired_capacity
    error_message = "desired_capacity must be a whole number >= 0."
  }
}

variable "min_healthy_percentage" {
  description = "Autoscaling mode: share of desired_capacity that must stay healthy while a rolling update (instance refresh) replaces instances. 100 (default): new instances are launched and must serve /ready before old ones are drained and terminated."
  type        = number
  default     = 100

  validation {
    condition     = var.min_healthy_percentage >= 0 && var.min_healthy_percentage <= 100
    error_message = "min_healthy_percentage must be between 0 and 100."
  }
}

variable "on_demand_base_capacity" {
  description = "Autoscaling mode with use_spot: instances that are always On-Demand, so that a Spot shortage or interruption never takes the endpoint down entirely."
  type        = number
  default     = 1

  validation {
    condition     = var.on_demand_base_capacity >= 0 && floor(var.on_demand_base_capacity) == var.on_demand_base_capacity
    error_message = "on_demand_base_capacity must be a whole number >= 0."
  }
}

variable "spot_instance_types" {
  description = "Autoscaling mode with use_spot: more instance types Spot may use besides the instance type (same architecture, enough GPU memory for the model), e.g. [\"g6.xlarge\", \"g5.2xlarge\"]. More types, fewer Spot shortages."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for type in var.spot_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", type))])
    error_message = "spot_instance_types must hold EC2 instance types such as g6.xlarge."
  }
}

variable "scaling_metric" {
  description = "Autoscaling mode: what the target tracking policy scales on. \"in_flight_requests\" (default): the proxy's requests in flight, averaged over the ready instances (each publishes it every minute; needs enable_monitoring = true, whose publisher sends it). \"alb_request_count\": requests per instance per minute, from the load balancer (cruder: one long generation counts as much as a short one)."
  type        = string
  default     = "in_flight_requests"

  validation {
    condition     = contains(["in_flight_requests", "alb_request_count"], var.scaling_metric)
    error_message = "scaling_metric must be \"in_flight_requests\" or \"alb_request_count\"."
  }
}

variable "scaling_target" {
  description = "Autoscaling mode: the value of scaling_metric per instance the policy keeps: instances are added above it and removed below it. Requests in flight for in_flight_requests (default 16: a 7B model on one A10G still answers briskly at that concurrency); requests per minute for alb_request_count."
  type        = number
  default     = 16

  validation {
    condition     = var.scaling_target > 0
    error_message = "scaling_target must be greater than 0."
  }
}

variable "enable_waf" {
  description = "Autoscaling mode: put an AWS WAF web ACL in front of the load balancer: a per-IP rate limit (waf_rate_limit) and AWS managed rules (IP reputation, known bad inputs, the common rule set with its body rules only counted, as prompts trip them). Billed per web ACL, rule and request."
  type        = bool
  default     = false
}

variable "waf_rate_limit" {
  description = "With enable_waf: requests one client IP may send in 5 minutes before WAF blocks it for as long as its rate stays above."
  type        = number
  default     = 2000

  validation {
    condition     = var.waf_rate_limit >= 10 && var.waf_rate_limit <= 2000000000
    error_message = "waf_rate_limit must be between 10 and 2000000000 requests per 5 minutes."
  }
}

variable "waf_log_retention_days" {
  description = "With enable_waf: log the requests WAF blocks or counts to CloudWatch Logs (log group aws-waf-logs-<name>-<environment>, Authorization header redacted), kept this many days. Null (default): no WAF logging."
  type        = number
  default     = null

  validation {
    condition     = var.waf_log_retention_days == null || contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], coalesce(var.waf_log_retention_days, 1))
    error_message = "waf_log_retention_days must be null or one of CloudWatch's retention periods: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "model_cache_bucket" {
  description = "S3 bucket in the deployment's region holding the model's Hugging Face files under <model_id>/ (e.g. s3://my-models/Qwen/Qwen2.5-7B-Instruct/config.json). Each instance syncs it to its model volume before vLLM starts, instead of downloading from Hugging Face; the instance role may read that prefix only. Both modes. Null (default): Hugging Face."
  type        = string
  default     = null

  validation {
    condition     = var.model_cache_bucket == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", coalesce(var.model_cache_bucket, "-")))
    error_message = "model_cache_bucket must be an S3 bucket name such as my-models (no s3:// and no prefix), or null."
  }
}

# --- operations: CloudWatch, alarms, the readiness gate ---------------------------------------

variable "enable_cloudwatch_logs" {
  description = "Send the logs to CloudWatch Logs, one log group per deployment (/ec2-inference/<name>-<environment>): vLLM's and the proxy's containers through Docker's awslogs driver (`docker logs` still works), NGINX's and the boot's logs through the CloudWatch agent. False: they stay on the instance, Docker's rotated local driver."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Days CloudWatch Logs keeps the deployment's logs (one of CloudWatch's values; 0 keeps them forever)."
  type        = number
  default     = 30

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch's retention values: 0 (forever), 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "log_kms_key_arn" {
  description = "KMS key that encrypts the log group (its key policy must let logs.<region>.amazonaws.com use it; docs/OPERATIONS.md). Null: CloudWatch Logs' own encryption."
  type        = string
  default     = null

  validation {
    condition     = var.log_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", coalesce(var.log_kms_key_arn, "-")))
    error_message = "log_kms_key_arn must be the ARN of a KMS key, such as arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab, or null."
  }
}

variable "enable_monitoring" {
  description = "Metrics, alarms and a dashboard in CloudWatch: memory, disk and GPUs (CloudWatch agent), the proxy's requests, errors, tokens, requests in flight, latency and time to first token, and the endpoint's health, published every minute; alarms on the status checks (instance mode, with EC2's recover and reboot actions; the autoscaling mode has none: the group's ELB health check replaces a broken instance), on the endpoint failing /ready, a disk above 85 % and the 5xx rate. The autoscaling mode's scaling_metric \"in_flight_requests\" needs it."
  type        = bool
  default     = true
}

variable "alarm_email" {
  description = "Email address the alarms notify through an SNS topic (AWS sends a confirmation first). Null: no topic; the alarms still recover and reboot the instance and show in the console."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", coalesce(var.alarm_email, "-")))
    error_message = "alarm_email must be an email address such as ops@example.com, or null."
  }
}

variable "unhealthy_alarm_minutes" {
  description = "Minutes the endpoint may fail /ready (checked every minute on the instance, through NGINX) before its alarm fires. A model load after a restart counts: give it more than your model takes."
  type        = number
  default     = 5

  validation {
    condition     = var.unhealthy_alarm_minutes >= 1 && var.unhealthy_alarm_minutes <= 60 && floor(var.unhealthy_alarm_minutes) == var.unhealthy_alarm_minutes
    error_message = "unhealthy_alarm_minutes must be a whole number from 1 to 60."
  }
}

variable "wait_for_ready" {
  description = "`terraform apply` waits until the endpoint answers /ready (tools/wait_ready.py, with the python3 of the machine that runs Terraform), printing progress, and fails after wait_for_ready_timeout with the commands that show why. Runs when the instance or the endpoint's address is new."
  type        = bool
  default     = true
}

variable "wait_for_ready_timeout" {
  description = "Seconds the readiness gate waits: a first GPU boot pulls the vLLM image and downloads the model (15-30 minutes for a 7B model; more for larger ones)."
  type        = number
  default     = 2400

  validation {
    condition     = var.wait_for_ready_timeout >= 10 && var.wait_for_ready_timeout <= 14400
    error_message = "wait_for_ready_timeout must be between 10 and 14400 seconds."
  }
}
